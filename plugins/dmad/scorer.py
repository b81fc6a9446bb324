"""DMAD-PDM's anomaly score, as its official evaluation computes it: three per-frame errors, each
min-max normalised within its video and smoothed over time by a robust weighted moving average, mixed
with the weights 0.2 (deformation), 0.4 (reconstruction error) and 0.6 (gradient error)."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from memad import FrameStats, Scorer

#: The official Ped2 evaluation's window weights (11 frames, the centre weighted most).
PED2_WEIGHTS = [1.0, 1.0, 1.0, 1.0, 1.2, 1.6, 1.2, 1.0, 1.0, 1.0, 1.0]


def robust_smooth(values: np.ndarray, weights: Sequence[float], keep: int) -> np.ndarray:
    """Each frame's value replaced by a weighted mean over the window centred on it, of only the ``keep``
    values of the window closest to the window's mean (ties: the earlier frame); ``weights`` give the
    window (its length) and each position's weight. Frames within half a window of an end take the value
    of the nearest full window; a sequence shorter than the window is returned unchanged.

    >>> robust_smooth(np.array([0., 0., 9., 0., 0.]), [1, 1, 1], keep=2).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    size, n = len(weights), len(values)
    if size <= 1 or n < size:
        return values.copy()
    windows = np.lib.stride_tricks.sliding_window_view(values, size)  # (n - size + 1, size)
    dist = np.abs(windows - windows.mean(axis=1, keepdims=True))
    order = np.argsort(dist, axis=1, kind="stable")[:, :keep]
    mask = np.zeros_like(windows)
    np.put_along_axis(mask, order, 1.0, axis=1)
    w = weights[None] * mask
    smoothed = (windows * w).sum(axis=1) / w.sum(axis=1)
    half = size // 2
    return np.concatenate([np.full(half, smoothed[0]), smoothed, np.full(size - 1 - half, smoothed[-1])])


class DMADScorer(Scorer):
    """DMAD-PDM's score: deformation, L1 error and gradient error, normalised, smoothed and mixed (0.2, 0.4, 0.6).

    ``a g~(deformation) + b g~(recon_l1) + c g~(gradient_error)``, ``g~`` the min-max normalisation per
    video followed by :func:`robust_smooth` within each video (the official evaluation). With a
    calibration, ``g~`` is the calibration's ranges alone, unsmoothed: a calibrated score depends on its
    frame only, as memad's calibration and streaming need (a threshold fitted on smoothed scores would be
    applied to per-frame ones in a stream, and smoothing ties a normal frame's score to the event next to it).

    The official weights are a = 0.2, b = 0.4, c = 0.6, the window the 11 weights of its Ped2 evaluation
    keeping 5 values. Frames of a video must be in temporal order (as memad scores them).

    Args:
        deformation, error, gradient: the weights a, b, c.
        smooth_weights: the smoothing window's weights (its length is the window); [] turns it off (it is always
            off on calibrated signals).
        smooth_keep: values of each window averaged (the closest to its mean).
        normalise: ``video`` (the official code), ``global`` or ``none``.
    """

    requires = ("deformation", "recon_l1", "gradient_error")

    def __init__(self, deformation: float = 0.2, error: float = 0.4, gradient: float = 0.6,
                 smooth_weights: list[float] = PED2_WEIGHTS, smooth_keep: int = 5,
                 normalise: Literal["video", "global", "none"] = "video"):
        if min(deformation, error, gradient) < 0:
            raise ValueError(f"scorer weights: expected values >= 0, got deformation={deformation}, "
                             f"error={error}, gradient={gradient}")
        if smooth_weights and not 1 <= smooth_keep <= len(smooth_weights):
            raise ValueError(f"scorer.smooth_keep: expected 1..{len(smooth_weights)} (the window), got {smooth_keep}")
        if any(w < 0 for w in smooth_weights) or (smooth_weights and sum(smooth_weights) <= 0):
            raise ValueError(f"scorer.smooth_weights: expected non-negative weights, got {smooth_weights}")
        if normalise not in ("video", "global", "none"):
            raise ValueError(f"scorer.normalise: expected 'video', 'global' or 'none', got {normalise!r}")
        self.weights = {"deformation": deformation, "recon_l1": error, "gradient_error": gradient}
        self.smooth_weights, self.smooth_keep, self.normalise = list(smooth_weights), smooth_keep, normalise

    def smooth(self, values: np.ndarray, video: np.ndarray) -> np.ndarray:
        """:func:`robust_smooth` applied within each video."""
        out = np.asarray(values, dtype=np.float64).copy()
        if not self.smooth_weights:
            return out
        for v in np.unique(video):
            sel = np.flatnonzero(video == v)
            out[sel] = robust_smooth(out[sel], self.smooth_weights, self.smooth_keep)
        return out

    def __call__(self, stats: FrameStats) -> np.ndarray:
        total = np.zeros(len(stats))
        for name, weight in self.weights.items():
            values = stats.normalised(name, self.normalise)
            total += weight * (values if stats.calibration is not None else self.smooth(values, stats.video))
        return total

    @property
    def relative(self) -> bool:
        return self.normalise != "none" or bool(self.smooth_weights)

    def config(self):
        return {"deformation": self.weights["deformation"], "error": self.weights["recon_l1"],
                "gradient": self.weights["gradient_error"], "smooth_weights": self.smooth_weights,
                "smooth_keep": self.smooth_keep, "normalise": self.normalise}


__all__ = ["DMADScorer", "robust_smooth", "PED2_WEIGHTS"]
