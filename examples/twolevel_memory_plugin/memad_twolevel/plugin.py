"""The entry point memad loads: one pluggy hook registering the memory, the scorer and the presets."""

from pathlib import Path

import memad

from .memory import TwoLevelMemory
from .scorer import TwoLevelScorer


@memad.hookimpl
def memad_register(registry):
    registry.add("memory", "twolevel", TwoLevelMemory)
    registry.add("scorer", "twolevel", TwoLevelScorer)
    registry.add_presets(Path(__file__).parent / "presets")  # mnad_pred_twolevel.yaml -> mnad_pred_twolevel
