"""No-memory baselines: the ``none`` memory and the ``ae`` / ``unet_pred`` presets."""

from pathlib import Path

from memad import hookimpl

from .memory import NoMemory

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def memad_register(registry):
    registry.add("memory", "none", NoMemory)
    registry.add_presets(PRESETS)
