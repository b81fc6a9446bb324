"""MemAE (Gong et al., ICCV 2019): the sparse, gradient-trained memory, its 3D-conv video
autoencoder and a 2D image variant, and the ``memae`` / ``memae2d`` presets."""

from pathlib import Path

from memad import hookimpl

from .memory import MemAEMemory
from .models import MemAE2DDecoder, MemAE2DEncoder, MemAE3DDecoder, MemAE3DEncoder

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def memad_register(registry):
    registry.add("memory", "memae", MemAEMemory)
    registry.add("encoder", "memae3d", MemAE3DEncoder)
    registry.add("decoder", "memae3d", MemAE3DDecoder)
    registry.add("encoder", "memae2d", MemAE2DEncoder)
    registry.add("decoder", "memae2d", MemAE2DDecoder)
    registry.add_presets(PRESETS)
