"""Per-frame anomaly scorers: PSNR, feature distance, the paper's weighted mix, MemAE's
regularity. Each returns scores where higher means more anomalous."""

from __future__ import annotations

from typing import Literal

import numpy as np

from memad import FrameStats, Scorer
from memad.interfaces import normalise_per_group

Normalise = Literal["video", "global", "none"]


def _normalise(values: np.ndarray, stats: FrameStats, how: Normalise) -> np.ndarray:
    if how == "video":
        return normalise_per_group(values, stats.video)
    if how == "global":
        return normalise_per_group(values, np.zeros(len(values), dtype=int))
    return np.asarray(values, dtype=np.float64)


def _check_normalise(normalise: str) -> None:
    if normalise not in ("video", "global", "none"):
        raise ValueError(f"scorer.normalise: expected 'video', 'global' or 'none', got {normalise!r}")


class WeightedScorer(Scorer):
    """The paper's score: ``1 - [w g(PSNR) + (1 - w)(1 - g(D))]``, g = min-max per video.

    Without a feature distance (no memory), it is ``1 - g(PSNR)``.
    """

    def __init__(self, weight: float = 0.6, normalise: Normalise = "video"):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"scorer.weight: expected a value in [0, 1], got {weight!r}")
        _check_normalise(normalise)
        self.weight, self.normalise = weight, normalise

    def __call__(self, stats: FrameStats) -> np.ndarray:
        g_psnr = _normalise(stats.psnr, stats, self.normalise)
        if stats.distance is None:
            return 1.0 - g_psnr
        g_dist = _normalise(stats.distance, stats, self.normalise)
        return 1.0 - (self.weight * g_psnr + (1.0 - self.weight) * (1.0 - g_dist))

    def config(self):
        return {"weight": self.weight, "normalise": self.normalise}


class PSNRScorer(Scorer):
    """``1 - g(PSNR)``: low PSNR (poor prediction) is anomalous."""

    def __init__(self, normalise: Normalise = "video"):
        _check_normalise(normalise)
        self.normalise = normalise

    def __call__(self, stats: FrameStats) -> np.ndarray:
        if self.normalise == "none":
            return -np.asarray(stats.psnr, dtype=np.float64)
        return 1.0 - _normalise(stats.psnr, stats, self.normalise)


class DistanceScorer(Scorer):
    """``g(D)``: queries far from their nearest memory item are anomalous."""

    def __init__(self, normalise: Normalise = "video"):
        _check_normalise(normalise)
        self.normalise = normalise

    def __call__(self, stats: FrameStats) -> np.ndarray:
        if stats.distance is None:
            raise ValueError("scorer 'distance' needs a memory that reports a feature distance")
        return _normalise(stats.distance, stats, self.normalise)


class RegularityScorer(Scorer):
    """MemAE's score: ``g(e)`` with e the frame's reconstruction error (1 - regularity)."""

    def __init__(self, normalise: Normalise = "video"):
        _check_normalise(normalise)
        self.normalise = normalise

    def __call__(self, stats: FrameStats) -> np.ndarray:
        return _normalise(stats.mse, stats, self.normalise)
