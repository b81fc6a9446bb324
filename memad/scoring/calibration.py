"""Calibrated scores: per-frame signals normalised with ranges learned on normal frames.

The paper normalises PSNR and the feature distance by their minimum and maximum within
each test video, which needs the whole video first and gives every video, normal or not,
a frame scoring 1. Calibration learns instead, per signal, the range ``[lo, hi]`` that
normal frames span (the ``quantiles`` of their values, 1% and 99% by default) and scales
every later frame by it: ``g(v) = (v - lo) / (hi - lo)``. The scorer's formula is unchanged
(:meth:`memad.interfaces.FrameStats.normalised` applies the ranges), so a calibrated score
depends on its frame alone and means the same on every video and on a live stream.

Whole normal videos are held out: the ranges and the threshold come from the others, the
threshold being the score that ``false_alarm_rate`` of their frames exceed; the held-out
frames then measure the false-alarm rate that threshold gives on normal footage the
calibration did not see (``calibration_["holdout_false_alarm_rate"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import open_split
from ..errors import ConfigError, DataError
from ..interfaces import FrameStats

__all__ = ["calibrate", "fit_ranges", "holdout_videos", "require_calibration"]


def holdout_videos(n: int, fraction: float) -> list[int]:
    """Indices of the videos held out of ``n``: ``round(fraction * n)`` (at least one when ``n >= 2``
    and ``fraction > 0``, never all), spread evenly over the split.

    >>> holdout_videos(8, 0.25), holdout_videos(1, 0.25), holdout_videos(3, 0.0)
    ([2, 5], [], [])
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"holdout: expected a fraction in [0, 1), got {fraction!r}")
    if n < 2 or fraction == 0:
        return []
    k = min(n - 1, max(1, round(fraction * n)))
    step = n / k
    return sorted({int(step * (i + 0.5)) for i in range(k)})


def fit_ranges(stats: FrameStats, quantiles: tuple[float, float] = (0.01, 0.99)) -> dict[str, list[float]]:
    """``{signal: [lo, hi]}``: the ``quantiles`` of each signal over the frames of ``stats``.

    >>> s = FrameStats(np.zeros(101, dtype=int), {"psnr": np.arange(101.0)})
    >>> fit_ranges(s, (0.1, 0.9))["psnr"]
    [10.0, 90.0]
    """
    lo_q, hi_q = quantiles
    if not 0.0 <= lo_q < hi_q <= 1.0:
        raise ConfigError(f"quantiles: expected 0 <= low < high <= 1, got {quantiles!r}")
    out = {}
    for name in stats.names:
        lo, hi = np.quantile(stats[name], [lo_q, hi_q])
        out[name] = [float(lo), float(hi)]
    return out


def calibrate(detector, data: Any, *, false_alarm_rate: float = 0.01, holdout: float = 0.25,
              quantiles: tuple[float, float] = (0.01, 0.99)) -> dict[str, Any]:
    """Fit ``detector.calibration_`` and ``detector.threshold_`` on the normal ``training`` split of
    ``data`` (see the module docstring); returns the calibration."""
    from .runner import score_videos
    from .threshold import threshold_from_scores

    if isinstance(false_alarm_rate, bool) or not 0.0 < false_alarm_rate < 1.0:
        raise ConfigError(f"false_alarm_rate: expected a fraction in (0, 1), got {false_alarm_rate!r}")
    videos = open_split(data, "training", detector.config)
    held = holdout_videos(len(videos.lengths), holdout)
    saved = detector.calibration_
    detector.calibration_ = None  # the uncalibrated signals are what is fitted
    try:
        scored = score_videos(detector, videos)
    finally:
        detector.calibration_ = saved
    stats = scored.stats
    is_held = np.isin(stats.video, held)
    fit = stats.subset(~is_held)
    if len(fit) == 0:
        raise DataError(f"{videos.source}: no scored normal frames to calibrate on")
    ranges = fit_ranges(fit, quantiles)
    scorer = detector.scorer
    fit_scores = np.asarray(scorer(fit.with_calibration(ranges)), dtype=np.float64)
    threshold = threshold_from_scores(fit_scores, contamination=false_alarm_rate)
    result: dict[str, Any] = {
        "signals": ranges, "quantiles": list(quantiles), "false_alarm_rate": float(false_alarm_rate),
        "threshold": threshold, "frames": int(len(fit)), "fit_false_alarm_rate": float((fit_scores >= threshold).mean()),
        "holdout_videos": [videos.names[i] for i in held], "holdout_frames": int(is_held.sum()),
        "holdout_false_alarm_rate": None, "source": str(videos.source),
    }
    if is_held.any():
        held_scores = np.asarray(scorer(stats.subset(is_held).with_calibration(ranges)), dtype=np.float64)
        result["holdout_false_alarm_rate"] = float((held_scores >= threshold).mean())
    detector.calibration_ = result
    detector.threshold_ = threshold
    return result


def require_calibration(detector, what: str = "calibrated scores") -> dict[str, Any]:
    """``detector.calibration_``, or an error that says how to calibrate."""
    if detector.calibration_ is None:
        raise ConfigError(f"{detector.config['name']}: {what} need a calibrated detector and this one is not; run "
                          f"`memad calibrate CHECKPOINT --data DATA` (or Detector.calibrate(data)) on normal footage")
    return detector.calibration_
