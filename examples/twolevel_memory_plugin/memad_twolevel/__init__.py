"""memad-twolevel-memory: a prototype memory at two encoder levels, its ``skip_distance`` signal and scorer."""

from .memory import TwoLevelMemory
from .scorer import TwoLevelScorer

__all__ = ["TwoLevelMemory", "TwoLevelScorer"]
