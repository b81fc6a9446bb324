"""MNAD (Park, Noh, Ham, CVPR 2020), the reference plugin: the U-Net encoder and
decoder, the prototype memory, and the ``mnad_pred`` / ``mnad_recon`` presets."""

from pathlib import Path

from memad import hookimpl

from .memory import PrototypeMemory
from .unet import UNetDecoder, UNetEncoder

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def memad_register(registry):
    registry.add("encoder", "mnad_unet", UNetEncoder)
    registry.add("decoder", "mnad_unet", UNetDecoder)
    registry.add("memory", "mnad", PrototypeMemory)
    registry.add_presets(PRESETS)
