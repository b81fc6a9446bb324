"""RBDC and TBDC in bounded memory: maps fed video by video, frame after frame (:class:`StreamedRegions`).

The criteria are :func:`memad.metrics.regions.rbdc_tbdc`'s with its resegmented sweep (each level
segments the maps anew). What the stream keeps does not grow with the frames:

- **Regions of a frame** need that frame only: at each level, the 8-connected components of
  ``map >= level`` as boxes, matched against the frame's ground-truth boxes (IoU ``>= beta``).
- **Tracks** need the previous frame: ground-truth regions of consecutive frames of a video whose
  boxes overlap are linked (union-find over the open video's regions). When a video ends its tracks
  are final, and only counts are kept: per level, regions hit, tracks detected, false regions.
- **Levels** are fixed before the frames are seen (``levels`` given), or a grid that adapts to the
  maps without a second pass: ``levels`` (an even count) equally spaced values of
  ``z = asinh(level / scale)``, from ``dz`` to ``levels * dz``, with ``scale`` the median of the
  first batch's frame maxima and ``levels * dz`` its largest frame maximum in z. A later frame whose
  maximum exceeds the top level doubles ``dz``: every other level is kept (its counts with it) and
  new levels are added above. No frame seen before reached them (its maximum was below the old top),
  so their counts are exact too: the result equals :func:`rbdc_tbdc` with ``thresholds`` set to the
  final :attr:`StreamedRegions.levels` (tested).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage
from torch import Tensor

from ..errors import ConfigError, DataError
from ._inputs import finite_scores
from .regions import _EIGHT, _EPS, _boxes, _find, box_iou, fp_curve_area

__all__ = ["StreamedRegions", "streamed_rbdc_tbdc"]

#: 8-connectivity within each level's map of a stack, none across levels.
_LEVELWISE = np.zeros((3, 3, 3), dtype=bool)
_LEVELWISE[1] = _EIGHT


def _as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _stack_boxes(labelled: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes ``[row0, col0, row1, col1)`` of labels ``1..n`` of a ``(levels, h, w)`` stack, and each
    label's plane. ``ndimage.label`` numbers labels in the order a raster scan first meets them, so a label's
    first pixel in raster order holds its plane and its first row (faster than ``find_objects``' slices)."""
    z, r, c = np.nonzero(labelled)
    label = labelled[z, r, c].astype(np.int64) - 1
    first = np.flatnonzero(np.r_[True, np.diff(np.maximum.accumulate(label)) > 0]) if n else np.zeros(0, np.int64)
    last_row = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_row, label, r)
    col0, col1 = np.full(n, labelled.shape[2], dtype=np.int64), np.zeros(n, dtype=np.int64)
    np.minimum.at(col0, label, c)
    np.maximum.at(col1, label, c)
    return np.stack([r[first], col0, last_row + 1, col1 + 1], axis=1).reshape(-1, 4), z[first]


class StreamedRegions:
    """RBDC / TBDC of maps fed in frame order, one video after another (see the module docstring).

    Args:
        levels: an even count of adaptive levels (default 128), or the map levels to sweep.
        beta: the IoU a detected region needs with a ground-truth region (the paper's 0.1).
        alpha: the fraction of a track's regions that must be detected (the paper's 0.1).

    ``update(maps, masks, video)`` takes consecutive frames ``(n, h, w)`` of video ``video``; a
    later call with the same id continues its tracks, another id closes it.
    """

    def __init__(self, levels: int | Sequence[float] | np.ndarray = 128, *, beta: float = 0.1, alpha: float = 0.1):
        for name, value in (("beta", beta), ("alpha", alpha)):
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} must be a fraction in (0, 1], got {value!r}")
        self.beta, self.alpha = float(beta), float(alpha)
        if isinstance(levels, (int, np.integer)) and not isinstance(levels, bool):
            if levels < 2 or levels % 2:
                raise ConfigError(f"levels must be an even count >= 2 or an array of map levels, got {levels!r}")
            self._count, self._fixed = int(levels), None
        else:
            fixed = np.sort(finite_scores(levels, "levels").reshape(-1))
            if fixed.size == 0:
                raise ConfigError("levels: expected at least one map level")
            self._count, self._fixed = len(fixed), fixed
        self.scale: float | None = None
        self._dz: float | None = None
        k = self._count
        self._false = np.zeros(k, dtype=np.int64)
        self._regions_hit = np.zeros(k, dtype=np.int64)
        self._tracks_hit = np.zeros(k, dtype=np.int64)
        self.regions = self.tracks = self.frames = 0
        self._video: Any = None
        self._parent: list[int] = []  # union-find over the open video's ground-truth regions
        self._hits: list[np.ndarray] = []  # per open region: hit at each level (bool, k)
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # the previous frame's boxes and region ids

    @property
    def levels(self) -> np.ndarray:
        """The map levels swept, ascending (empty before the first frame with a positive maximum)."""
        if self._fixed is not None:
            return self._fixed.copy()
        if self._dz is None:
            return np.zeros(0)
        return self.scale * np.sinh(self._dz * np.arange(1, self._count + 1))

    def update(self, maps: Tensor | np.ndarray, masks: Tensor | np.ndarray, video: Any = 0) -> None:
        """Count frames ``maps`` ``(n, h, w)`` with their ground-truth ``masks`` (same shape), of video ``video``."""
        maps, masks = _as_numpy(maps), _as_numpy(masks)
        if maps.ndim != 3 or masks.shape != maps.shape:
            raise DataError(f"StreamedRegions.update: maps {maps.shape} and masks {masks.shape}: expected two arrays "
                            "(n, h, w) of the same shape")
        maps = maps.astype(np.float32, copy=False) if maps.dtype != np.float64 else maps
        if not np.isfinite(maps).all():
            finite_scores(maps, "anomaly-map values")  # raises, naming the first
        if len(maps) == 0:
            return
        if video != self._video:
            self._close_video()
            self._video = video
        peaks = maps.reshape(len(maps), -1).max(axis=1)
        self._fit_levels(peaks)
        levels = self.levels
        for i in range(len(maps)):
            self._frame(maps[i], masks[i].astype(bool), float(peaks[i]), levels)
        self.frames += len(maps)

    def _fit_levels(self, peaks: np.ndarray) -> None:
        if self._fixed is not None:
            return
        if self._dz is None:
            positive = peaks[peaks > 0]
            if not len(positive):
                return
            self.scale = float(np.median(positive))
            self._dz = float(np.arcsinh(positive.max() / self.scale)) / self._count
        top = float(np.arcsinh(max(float(peaks.max()), 0.0) / self.scale))
        half = self._count // 2
        while top > self._dz * self._count * (1 + 1e-12):
            self._dz *= 2  # keep levels 2, 4, ... (as 1, 2, ...), add new ones above
            for counts in (self._false, self._regions_hit, self._tracks_hit):
                counts[:half] = counts[1::2].copy()
                counts[half:] = 0
            for j, h in enumerate(self._hits):
                kept = np.zeros_like(h)
                kept[:half] = h[1::2]
                self._hits[j] = kept

    def _frame(self, frame_map: np.ndarray, mask: np.ndarray, peak: float, levels: np.ndarray) -> None:
        gt = _boxes(ndimage.label(mask, structure=_EIGHT)[0])[0]
        start = len(self._parent)
        ids = np.arange(start, start + len(gt))
        self._parent += ids.tolist()
        self._hits += [np.zeros(self._count, dtype=bool) for _ in range(len(gt))]
        if self._last is not None and len(self._last[0]) and len(gt):
            prev_boxes, prev_ids = self._last
            for a, b in zip(*np.nonzero(box_iou(prev_boxes, gt) > 0)):
                self._parent[_find(self._parent, int(prev_ids[a]))] = _find(self._parent, int(ids[b]))
        self._last = (gt, ids)
        ks = np.flatnonzero(levels <= peak)
        if not len(ks):
            return
        # Every level at once: the thresholded maps stacked, labelled with no link between levels.
        labelled, n = ndimage.label(frame_map[None] >= levels[ks][:, None, None], structure=_LEVELWISE)
        boxes, plane = _stack_boxes(labelled, n)
        level = ks[plane]
        match = box_iou(boxes, gt) >= self.beta - _EPS
        np.add.at(self._false, level[~match.any(axis=1)], 1)
        for j in np.flatnonzero(match.any(axis=0)):
            self._hits[start + j][level[match[:, j]]] = True

    def _close_video(self) -> None:
        """The open video's tracks are final: fold its regions into the per-level counts."""
        if self._parent:
            hits = np.stack(self._hits)
            roots = np.array([_find(self._parent, i) for i in range(len(self._parent))])
            _, track = np.unique(roots, return_inverse=True)
            track = track.reshape(-1)
            n_tracks = int(track.max()) + 1
            size = np.bincount(track, minlength=n_tracks)
            need = np.ceil(self.alpha * size - 1e-9)
            per_track = np.zeros((n_tracks, self._count), dtype=np.int64)
            np.add.at(per_track, track, hits.astype(np.int64))
            self._regions_hit += hits.sum(axis=0)
            self._tracks_hit += (per_track >= need[:, None]).sum(axis=0)
            self.regions += len(track)
            self.tracks += n_tracks
        self._parent, self._hits, self._last, self._video = [], [], None, None

    def compute(self, max_fp: float = 1.0) -> dict[str, Any]:
        """``rbdc``, ``tbdc`` (None without ground-truth regions), the counts and the ``curve`` (levels
        descending), as :func:`rbdc_tbdc` returns them. Closes the open video."""
        if not max_fp > 0:
            raise ConfigError(f"max_fp must be > 0 false positives per frame, got {max_fp!r}")
        if self.frames == 0:
            raise DataError("StreamedRegions.compute: no frames were counted")
        self._close_video()
        levels = self.levels
        if len(levels) == 0:  # every map was all zero: nothing was ever detected
            levels = np.zeros(1)
        order = np.arange(len(levels))[::-1]
        fp = self._false[order] / self.frames
        rbdr = self._regions_hit[order] / self.regions if self.regions else np.full(len(order), np.nan)
        tbdr = self._tracks_hit[order] / self.tracks if self.tracks else np.full(len(order), np.nan)
        curve = {"threshold": levels[order].tolist(), "fp_per_frame": fp.tolist(), "rbdr": rbdr.tolist(),
                 "tbdr": tbdr.tolist()}
        return {
            "rbdc": fp_curve_area(fp, rbdr, max_fp) if self.regions else None,
            "tbdc": fp_curve_area(fp, tbdr, max_fp) if self.tracks else None,
            "regions": self.regions, "tracks": self.tracks, "frames": self.frames, "curve": curve,
        }


def streamed_rbdc_tbdc(maps: Tensor | np.ndarray, masks: Tensor | np.ndarray, video: np.ndarray,
                       **options: Any) -> dict[str, Any]:
    """:class:`StreamedRegions` fed every video of ``maps`` in turn (frames of a video in array order)."""
    video = np.asarray(video)
    acc = StreamedRegions(**options)
    for v in dict.fromkeys(video.tolist()):
        sel = np.flatnonzero(video == v)
        acc.update(_as_numpy(maps)[sel], _as_numpy(masks)[sel], v)
    return acc.compute()

