"""timm backbones as encoders (``encoder: {name: timm, model: resnet18}``) and the
timm-backed presets (``mnad_pred_resnet18``)."""

from pathlib import Path

from memad import hookimpl

from .encoder import TimmEncoder

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def memad_register(registry):
    registry.add("encoder", "timm", TimmEncoder)
    registry.add_presets(PRESETS)
