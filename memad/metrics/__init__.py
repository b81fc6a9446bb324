"""Metrics of scored frames, maps and events against the ground truth, one module per family:

- :mod:`~memad.metrics.frame`: frame AUROC (pooled, per video, per scene), AUPR, EER;
- :mod:`~memad.metrics.bootstrap`: the bootstrap interval of the frame AUROC over videos;
- :mod:`~memad.metrics.threshold`: precision, recall, F1 and false alarms at a threshold;
- :mod:`~memad.metrics.deployment`: event recall, false alarms per 1,000 normal frames and detection
  delay of the events ``memad detect`` would raise;
- :mod:`~memad.metrics.pixel`: pixel AUROC, exact or streamed in bounded memory;
- :mod:`~memad.metrics.regions`: the region- and track-based detection criteria (RBDC, TBDC);
  :mod:`~memad.metrics.region_stream`: the same in bounded memory, from maps fed video by video;
- :mod:`~memad.metrics.categories`: per-category AUROC of image sets.

Plain functions of numpy arrays (torch tensors for the pixel metrics), apart from the loop that
produced the scores (:mod:`memad.scoring.runner`). Definitions and sources: docs/metrics.md.
"""

from __future__ import annotations

from .bootstrap import frame_auroc_ci95, weighted_auroc
from .categories import category_metrics
from .deployment import anomalous_intervals, event_metrics
from .frame import (
    SINGLE_CLASS,
    eer,
    frame_auroc_macro,
    frame_auroc_per_scene,
    frame_metrics,
    shanghaitech_scene,
    shanghaitech_scenes,
)
from .pixel import PixelAUROC, pixel_auroc
from .region_stream import StreamedRegions, streamed_rbdc_tbdc
from .regions import GroundTruthRegions, box_iou, fp_curve_area, ground_truth_tracks, rbdc_tbdc
from .threshold import best_f1, f1_at_threshold, precision_recall_f1

__all__ = ["frame_metrics", "pixel_auroc", "eer", "precision_recall_f1", "category_metrics", "f1_at_threshold",
           "best_f1",
           "frame_auroc_macro", "frame_auroc_per_scene", "shanghaitech_scene", "shanghaitech_scenes", "SINGLE_CLASS",
           "frame_auroc_ci95", "weighted_auroc", "event_metrics", "anomalous_intervals", "PixelAUROC",
           "rbdc_tbdc", "ground_truth_tracks", "GroundTruthRegions", "box_iou", "fp_curve_area", "StreamedRegions",
           "streamed_rbdc_tbdc"]
