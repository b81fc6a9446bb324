"""The result of scoring a test split: every scored frame's anomaly score, with what the metrics need.

Produced by :func:`memad.scoring.runner.score_videos`; :meth:`Scores.metrics` computes the
frame-level, pixel-level, region, interval and event metrics of :mod:`memad.metrics` from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import DataError
from ..interfaces import FrameStats
from ..metrics import (
    category_metrics,
    event_metrics,
    frame_auroc_ci95,
    frame_auroc_macro,
    frame_auroc_per_scene,
    frame_metrics,
    pixel_auroc,
    precision_recall_f1,
)

__all__ = ["Scores", "EVENT_KEYS"]

#: The event metrics (:func:`memad.metrics.event_metrics`) reported at the calibrated threshold.
EVENT_KEYS = ("event_recall", "false_alarms_per_1000", "delay_median", "delay_p90")


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
        maps: ``(K, h, w)`` per-pixel squared error of the scored frames ``map_frames``, or None.
            Scoring keeps those of the highest-scoring frames only (``keep_maps``, 16 by default; all
            with ``keep_maps="all"``): the pixel metrics are streamed while scoring (``pixel``).
        masks: ``(K, h, w)`` ground-truth masks of the same frames, or None.
        video_names: names of the test videos.
        seconds: wall time of scoring (model only, frames already decoded).
        calibrated: ``(N,)`` the same scorer on calibrated signals (None when not calibrated):
            a frame's score depends on that frame alone.
        map_frames: ``(K,)`` the positions (indices into ``scores``) whose maps ``maps`` holds,
            ascending; None means every scored frame, in order.
        pixel: the pixel metrics streamed while scoring (``pixel_auroc``, ``pixel_auroc_bound``,
            ``regions``: the RBDC/TBDC result); empty without masks.
        scenes: per test video its scene, when the dataset declares scenes; else None.
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
    map_frames: np.ndarray | None = None
    pixel: dict[str, Any] = field(default_factory=dict)
    scenes: list[str] | None = None

    @property
    def decision(self) -> np.ndarray:
        """The scores a threshold applies to: the calibrated ones when there are, else the scorer's own."""
        return self.calibrated if self.calibrated is not None else self.scores

    @property
    def fps(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else float("nan")

    def map_index(self, i: int) -> int | None:
        """Where scored frame ``i``'s map is in ``maps`` (None when it was not kept)."""
        if self.maps is None:
            return None
        if self.map_frames is None:
            return int(i)
        j = int(np.searchsorted(self.map_frames, i))
        return j if j < len(self.map_frames) and int(self.map_frames[j]) == int(i) else None

    def _all_maps(self) -> bool:
        return self.maps is not None and self.masks is not None and (
            self.map_frames is None or len(self.map_frames) == len(self.scores))

    def metrics(self, threshold: float | None = None, *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        """The test metrics; docs/metrics.md defines each.

        ``frame_auroc``, ``frame_auroc_macro`` (videos holding one class left out), ``aupr``, ``eer``,
        ``frame_auroc_macro_pad`` (the padded per-video mean the papers reporting it use),
        ``frame_auroc_per_scene`` (None unless the dataset declares scenes), ``frame_auroc_ci95``
        (the bootstrap interval over test videos: ``resamples`` draws, numpy seed ``seed``),
        ``pixel_auroc``, ``rbdc`` and ``tbdc`` (None without pixel masks), ``fps``, counts. With
        calibrated scores also ``calibrated_frame_auroc`` (and ``calibrated_frame_auroc_macro``, its mean
        per video) and, given the calibrated ``threshold``,
        precision, recall, F1 and the false-alarm rate on normal frames at it, and the events an
        operator would see there: ``event_recall``, ``false_alarms_per_1000`` (normal frames),
        ``delay_median`` and ``delay_p90`` (frames).
        """
        if self.labels is None:
            raise DataError("no ground-truth labels for these test frames: pass a label file (--labels)")
        out = frame_metrics(self.scores, self.labels, self.video)
        two = len(np.unique(self.labels)) == 2
        out["frame_auroc_macro_pad"] = frame_auroc_macro(self.scores, self.labels, self.video) if two else None
        out["frame_auroc_per_scene"] = None if self.scenes is None else frame_auroc_per_scene(
            self.scores, self.labels, self.video, dict(enumerate(self.scenes)))
        out["frame_auroc_ci95"] = frame_auroc_ci95(self.scores, self.labels, self.video, resamples=resamples,
                                                   seed=seed)
        if "pixel_auroc" in self.pixel:
            out["pixel_auroc"] = self.pixel["pixel_auroc"]
        else:  # maps and masks of every frame given directly
            out["pixel_auroc"] = pixel_auroc(self.maps, self.masks) if self._all_maps() else None
        regions = self.pixel.get("regions") or {}
        out["rbdc"], out["tbdc"] = regions.get("rbdc"), regions.get("tbdc")
        out["fps"] = self.fps
        out["frames"] = int(len(self.scores))
        out["anomalous_frames"] = int(self.labels.sum())
        out["mode"] = self.mode
        if self.calibrated is not None:
            cal = frame_metrics(self.calibrated, self.labels, self.video)
            out["calibrated_frame_auroc"] = cal["frame_auroc"]
            out["calibrated_frame_auroc_macro"] = cal["frame_auroc_macro"]
            if threshold is not None:
                at = precision_recall_f1(self.labels, (self.calibrated >= threshold).astype(np.int8))
                out.update(threshold=float(threshold), **at)
                events = event_metrics(self.calibrated, self.labels, self.video, float(threshold))
                out.update({k: events[k] for k in EVENT_KEYS})
        if "categories" in self.extra:  # image sets: AUROC per defect type
            out["per_category"] = category_metrics(self.scores, self.labels, self.extra["categories"])
        return out
