"""Each video's own baseline (``test.warmup``): signals shifted by how the start of their video differs
from the calibration videos'.

A calibrated score compares a frame's signals with the ranges normal frames spanned on the calibration
videos. When footage differs from video to video (another camera, light, ground, traffic), a new video's
normal frames can sit wholly above or below those ranges: the ranking within the video is good, the scale
between videos is not. With ``warmup = W > 0`` each signal ``v`` of a video (or stream) is shifted before
the calibration's ranges apply:

    v'_t = v_t - (m_t - r),   m_t = median(v_0 ... v_min(t, W - 1)),

``m_t`` the median of the video's first ``W`` scored frames (of all its frames so far, before it has
``W``), ``r`` the median over the calibration videos of their own ``m_(W-1)``. The shift is causal, so a
stream scores each frame as it arrives exactly as offline scoring scores it. It assumes that a video
starts normal: its first ``W`` scored frames set its baseline, and an anomaly there lowers the scores of
what follows. The calibration records ``warmup`` and ``baseline`` (the ``r`` per signal).

>>> causal_medians(np.array([1., 3., 2., 9., 9.]), np.zeros(5, dtype=int), 3).tolist()
[1.0, 2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..interfaces import FrameStats

__all__ = ["causal_medians", "video_baselines", "align", "StreamBaseline"]


def causal_medians(values: np.ndarray, video: np.ndarray, warmup: int) -> np.ndarray:
    """Per frame, the median of its video's first ``min(k + 1, warmup)`` values (``k`` its position there)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    for v in np.unique(video):
        idx = np.flatnonzero(video == v)
        head = values[idx[:warmup]]
        running = np.array([np.median(head[:j + 1]) for j in range(len(head))])
        out[idx] = np.concatenate([running, np.full(len(idx) - len(head), running[-1] if len(running) else 0.0)])
    return out


def video_baselines(stats: FrameStats, warmup: int) -> dict[str, float]:
    """``{signal: r}``: the median over the videos of ``stats`` of each video's warm-up median."""
    out = {}
    for name, values in stats.signals.items():
        firsts = [float(np.median(values[stats.video == v][:warmup])) for v in np.unique(stats.video)]
        out[name] = float(np.median(firsts))
    return out


def align(stats: FrameStats, calibration: Mapping[str, Any]) -> FrameStats:
    """``stats`` with every signal the calibration has a baseline for shifted (a no-op without a warm-up)."""
    warmup = int(calibration.get("warmup") or 0)
    if warmup <= 0:
        return stats
    baseline = calibration["baseline"]
    signals = {k: (v - (causal_medians(v, stats.video, warmup) - baseline[k]) if k in baseline else v)
               for k, v in stats.signals.items()}
    return FrameStats(stats.video, signals, calibration=stats.calibration)


class StreamBaseline:
    """The same shift, one frame at a time: keeps the first ``warmup`` values of each signal of a stream."""

    def __init__(self, calibration: Mapping[str, Any]):
        self.warmup = int(calibration.get("warmup") or 0)
        self.baseline = calibration.get("baseline") or {}
        self.head: dict[str, list[float]] = {k: [] for k in self.baseline}

    def __call__(self, stats: FrameStats) -> FrameStats:
        """One frame's ``stats`` shifted by the stream's baseline so far (``stats`` itself without a warm-up)."""
        if self.warmup <= 0:
            return stats
        signals = dict(stats.signals)
        for k, ref in self.baseline.items():
            if k not in signals:
                continue
            head = self.head[k]
            if len(head) < self.warmup:
                head.append(float(signals[k][0]))
            signals[k] = signals[k] - (float(np.median(head)) - ref)
        return FrameStats(stats.video, signals, calibration=stats.calibration)
