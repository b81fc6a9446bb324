"""A scorer that mixes the paper's score with the skip level's distance to its memory."""

from __future__ import annotations

from typing import Literal

import numpy as np

import memad


class TwoLevelScorer(memad.Scorer):
    """PSNR, distance and skip_distance mixed: ``(1 - s)[w (1 - g(PSNR)) + (1 - w) g(D)] + s g(D_skip)``.

    ``g`` normalises a signal (min-max per video by default, or by the detector's
    calibration); ``D`` is the memory's ``distance`` (its deeper level) and ``D_skip`` its
    ``skip_distance``. With ``skip_weight: 0`` this is the ``mnad`` scorer, since
    ``1 - [w g(PSNR) + (1 - w)(1 - g(D))] = w (1 - g(PSNR)) + (1 - w) g(D)``.

    Args:
        weight: ``w``, the share of PSNR against ``distance`` in the paper's score.
        skip_weight: ``s``, the share of ``skip_distance`` in the final score.
        normalise: ``video`` (min-max per video), ``global`` (over all frames) or ``none``.
    """

    requires = ("psnr", "distance", "skip_distance")

    def __init__(self, weight: float = 0.6, skip_weight: float = 0.3,
                 normalise: Literal["video", "global", "none"] = "video"):
        for name, value in (("weight", weight), ("skip_weight", skip_weight)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"scorer.{name}: expected a value in [0, 1], got {value!r}")
        if normalise not in ("video", "global", "none"):
            raise ValueError(f"scorer.normalise: expected 'video', 'global' or 'none', got {normalise!r}")
        self.weight, self.skip_weight, self.normalise = weight, skip_weight, normalise

    def __call__(self, stats: memad.FrameStats) -> np.ndarray:
        g_psnr = stats.normalised("psnr", self.normalise)
        g_dist = stats.normalised("distance", self.normalise)
        g_skip = stats.normalised("skip_distance", self.normalise)
        paper = self.weight * (1.0 - g_psnr) + (1.0 - self.weight) * g_dist
        return (1.0 - self.skip_weight) * paper + self.skip_weight * g_skip

    @property
    def relative(self) -> bool:
        return self.normalise != "none"

    def config(self) -> dict[str, object]:
        return {"weight": self.weight, "skip_weight": self.skip_weight, "normalise": self.normalise}
