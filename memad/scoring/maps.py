"""What scoring does with the per-pixel error maps, video by video, so that memory does not grow with
the number of test frames (:class:`MapSink`).

Each scored video's maps, as they come out of the network, go to

- the streamed pixel AUROC (:class:`memad.metrics.PixelAUROC`: two fixed-size histograms) and the
  streamed region and track criteria (:class:`memad.metrics.StreamedRegions`: per level counts,
  the open video's ground-truth regions), when the split has pixel masks (image sets, whose
  images are not frames of a video, get no RBDC/TBDC);
- the maps kept for plots: those of the ``keep_top`` highest-scoring and ``keep_lowest``
  lowest-scoring frames, and those of the split frames named in ``keep_frames`` whatever their scores
  (``keep_top="all"`` keeps every map, as scoring did before). A video's frames are ranked by the
  scorer applied to that video's signals alone, which is the final score for scorers that normalise
  per video or not at all (every built-in preset's); with ``normalise: global`` the maps kept are
  those of the per-video ranking's extremes.

Then the maps are dropped: what stays is the maps kept (``keep_top + keep_lowest`` of them) and
counts. Peak memory is one video's maps.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..interfaces import FrameStats, Scorer
from ..metrics import PixelAUROC, StreamedRegions

__all__ = ["MapSink", "MapResult", "TOP_MAPS", "check_keep"]

#: Maps kept by default: those of the highest-scoring frames, for the top-frames plots.
TOP_MAPS = 16
#: Frames of a video given to the pixel metrics at a time.
CHUNK = 128


def check_keep(keep_top: int | str, keep_lowest: int) -> None:
    """Refuse a ``keep_top`` other than a count >= 0 or ``"all"``, or a negative ``keep_lowest``."""
    if keep_top != "all" and (isinstance(keep_top, bool) or not isinstance(keep_top, int) or keep_top < 0):
        raise ConfigError(f"keep_maps: expected a count >= 0 of maps to keep, or 'all', got {keep_top!r}")
    if isinstance(keep_lowest, bool) or not isinstance(keep_lowest, int) or keep_lowest < 0:
        raise ConfigError(f"keep_lowest: expected a count >= 0 of maps to keep, got {keep_lowest!r}")


@dataclass
class MapResult:
    """The maps kept and the pixel metrics streamed: ``maps``/``masks`` of the scored frames ``frames``
    (positions in the scores, ascending), and ``metrics`` (``pixel_auroc``, its ``pixel_auroc_bound``,
    ``regions``: the RBDC/TBDC result)."""

    maps: Tensor | None
    masks: Tensor | None
    frames: np.ndarray | None
    metrics: dict[str, Any] = field(default_factory=dict)


class MapSink:
    """Receives each scored video's maps (see the module docstring)."""

    def __init__(self, masks: Tensor | None, scorer: Scorer | None, *, keep_top: int | str = TOP_MAPS,
                 keep_lowest: int = 0, regions: bool = True, keep_frames: Collection[int] = ()):
        check_keep(keep_top, keep_lowest)
        self.masks = masks
        self.pinned_frames = {int(f) for f in keep_frames}
        self._pinned: list[tuple[float, int, Tensor, Tensor | None]] = []
        self.scorer = scorer
        self.keep_all = keep_top == "all"
        self.keep_top, self.keep_lowest = (0 if self.keep_all else int(keep_top)), int(keep_lowest)
        self.pixel = PixelAUROC() if masks is not None else None
        self.regions = StreamedRegions() if masks is not None and regions else None
        self.frames = 0
        self._kept: list[tuple[float, int, Tensor, Tensor | None]] = []  # (score, position, map, mask)
        self._all: list[tuple[int, Tensor, Tensor | None]] = []

    def add(self, video: int, frames: np.ndarray, start: int, maps: Tensor, signals: dict[str, Tensor]) -> None:
        """Video ``video``'s maps ``(n, h, w)`` of split frames ``frames``, at positions ``start...`` of the scores."""
        masks = None if self.masks is None else self.masks[torch.from_numpy(np.asarray(frames))]
        self.frames += len(maps)
        if masks is not None:
            for s in range(0, len(maps), CHUNK):  # a block at a time: the metrics' float copies stay small
                part = maps[s:s + CHUNK].float()
                self.pixel.update(part, masks[s:s + CHUNK])
                if self.regions is not None:
                    self.regions.update(part.numpy(), masks[s:s + CHUNK].numpy(), video)
        if self.keep_all:
            self._all.append((start, maps, masks))
            return
        for i, f in enumerate(np.asarray(frames)):
            if int(f) in self.pinned_frames:
                self._pinned.append((0.0, start + i, maps[i].clone(), None if masks is None else masks[i]))
        if not self.keep_top and not self.keep_lowest:
            return
        score = self._video_scores(video, signals, len(maps))
        for i in range(len(maps)):
            self._kept.append((float(score[i]), start + i, maps[i].clone(), None if masks is None else masks[i]))
        self._kept.sort(key=lambda c: (-c[0], c[1]))  # the order np.argsort(-scores, kind="stable") gives
        if len(self._kept) > self.keep_top + self.keep_lowest:
            self._kept = self._kept[:self.keep_top] + (self._kept[-self.keep_lowest:] if self.keep_lowest else [])

    def _video_scores(self, video: int, signals: dict[str, Tensor], n: int) -> np.ndarray:
        """The scorer on this video's signals alone (NaN ranks lowest); the frame error without a scorer."""
        stats = FrameStats(np.full(n, video), {k: v.double().numpy() for k, v in signals.items()})
        if self.scorer is None or any(s not in stats for s in self.scorer.requires):
            return stats.get("mse") if "mse" in stats else np.zeros(n)  # the full scoring names the missing signal
        score = np.asarray(self.scorer(stats), dtype=np.float64).reshape(-1)
        return np.nan_to_num(score, nan=-np.inf)

    def result(self) -> MapResult:
        """The maps kept and the pixel metrics."""
        metrics: dict[str, Any] = {}
        if self.pixel is not None and self.frames:
            metrics = {"pixel_auroc": self.pixel.compute(), "pixel_auroc_bound": self.pixel.error_bound()}
            if self.regions is not None:
                metrics["regions"] = self.regions.compute()
        if self.keep_all:
            if not self._all:
                return MapResult(None, None, None, metrics)
            frames = np.concatenate([s + np.arange(len(m)) for s, m, _ in self._all])
            maps = torch.cat([m for _, m, _ in self._all])
            masks = None if self.masks is None else torch.cat([k for _, _, k in self._all])
            return MapResult(maps, masks, frames, metrics)
        kept = sorted({c[1]: c for c in self._kept + self._pinned}.values(), key=lambda c: c[1])
        if not kept:
            return MapResult(None, None, None, metrics)
        maps = torch.stack([c[2] for c in kept])
        masks = None if self.masks is None else torch.stack([c[3] for c in kept])
        return MapResult(maps, masks, np.array([c[1] for c in kept], dtype=np.int64), metrics)
