"""The result of scoring a test split: every scored frame's anomaly score, with what the metrics need.

Produced by :func:`memad.scoring.runner.score_videos`; :meth:`Scores.metrics` computes the
frame-level, pixel-level and threshold metrics of :mod:`memad.metrics` from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import DataError
from ..interfaces import FrameStats
from ..metrics import category_metrics, frame_metrics, pixel_auroc, precision_recall_f1

__all__ = ["Scores"]


@dataclass
class Scores:
    """Anomaly scores of every scored test frame, with what is needed for the metrics.

    Attributes:
        scores: ``(N,)`` the scorer's anomaly score per scored frame (higher = more anomalous),
            as configured (per-video min-max for the paper's presets).
        frame: ``(N,)`` index of each scored frame in the split (0-based, all videos).
        video: ``(N,)`` video index of each scored frame.
        labels: ``(N,)`` 0/1 ground truth, or None.
        stats: the per-frame signals the scorer used.
        maps: ``(N, h, w)`` per-pixel squared error, or None.
        masks: ``(N, h, w)`` ground-truth masks of the scored frames, or None.
        video_names: names of the test videos.
        seconds: wall time of scoring (model only, frames already decoded).
        calibrated: ``(N,)`` the same scorer on calibrated signals (None when not calibrated):
            a frame's score depends on that frame alone.
    """

    scores: np.ndarray
    frame: np.ndarray
    video: np.ndarray
    labels: np.ndarray | None
    stats: FrameStats
    maps: Tensor | None
    masks: Tensor | None
    video_names: list[str]
    seconds: float
    mode: str = "sequential"
    extra: dict[str, Any] = field(default_factory=dict)
    calibrated: np.ndarray | None = None

    @property
    def decision(self) -> np.ndarray:
        """The scores a threshold applies to: the calibrated ones when there are, else the scorer's own."""
        return self.calibrated if self.calibrated is not None else self.scores

    @property
    def fps(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else float("nan")

    def metrics(self, threshold: float | None = None) -> dict[str, Any]:
        """``frame_auroc``, ``frame_auroc_macro``, ``aupr``, ``eer``, ``pixel_auroc``, ``fps``, counts.

        With calibrated scores also ``calibrated_frame_auroc`` and, given the calibrated
        ``threshold``, precision, recall, F1 and the false-alarm rate on normal frames at it.
        """
        if self.labels is None:
            raise DataError("no ground-truth labels for these test frames: pass a label file (--labels)")
        out = frame_metrics(self.scores, self.labels, self.video)
        out["pixel_auroc"] = pixel_auroc(self.maps, self.masks)
        out["fps"] = self.fps
        out["frames"] = int(len(self.scores))
        out["anomalous_frames"] = int(self.labels.sum())
        out["mode"] = self.mode
        if self.calibrated is not None:
            cal = frame_metrics(self.calibrated, self.labels, self.video)
            out["calibrated_frame_auroc"] = cal["frame_auroc"]
            if threshold is not None:
                at = precision_recall_f1(self.labels, (self.calibrated >= threshold).astype(np.int8))
                out.update(threshold=float(threshold), **at)
        if "categories" in self.extra:  # image sets: AUROC per defect type
            out["per_category"] = category_metrics(self.scores, self.labels, self.extra["categories"])
        return out
