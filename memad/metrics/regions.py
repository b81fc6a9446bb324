"""Region- and track-based detection criteria (RBDC, TBDC) of Ramachandra & Jones, "Street Scene: a
new dataset and evaluation protocol for video anomaly detection" (WACV 2020), from anomaly maps and
ground-truth masks.

- **Regions.** A detected region is an 8-connected component of a frame's thresholded map
  (``map >= t``), taken as its bounding box, scored by the map's maximum inside it. A ground-truth
  region is an 8-connected component of a frame's mask (or, given ``tracks``, the pixels of one
  track id in the frame), also as its bounding box.
- **Tracks.** Without ids, ground-truth regions of consecutive frames of a video whose boxes overlap
  (IoU > 0) belong to the same track (a track is a connected group of such links, so regions that
  merge or split stay one track).
- **Criteria.** A ground-truth region is detected when a detected region of its frame has box IoU
  ``>= beta`` with it; a track is detected when at least ``alpha`` of its regions are; a detected region
  with IoU ``< beta`` with every ground-truth region of its frame is a false positive. RBDR / TBDR are
  the fractions of regions / tracks detected; the false-positive rate is false regions per test frame.
- **Sweep.** By default (``segment_at=None``) the maps are segmented anew at each threshold ``t``: the
  levels are ``thresholds`` (an array) or that many quantiles of the frames' maxima (an int). With
  ``segment_at`` set, the regions are segmented once at that level and the sweep runs over their scores
  (every distinct score unless ``thresholds`` is an array), which gives the exact curve.
- **Summary.** The operating points, with ``(0, 0)`` (nothing detected), become the curve
  ``r(x) = max{rate_t : fp_t <= x}`` at each point's false-positive rate, joined linearly between
  points and held level after the last; RBDC / TBDC are its area over ``0 <= x <= max_fp`` divided by
  ``max_fp`` (1 false region per frame in the paper), so a perfect detector scores 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..errors import ConfigError, DataError
from ._inputs import finite_scores

__all__ = ["rbdc_tbdc", "ground_truth_tracks", "GroundTruthRegions", "box_iou", "fp_curve_area"]

_EIGHT = np.ones((3, 3), dtype=bool)
_EPS = 1e-12


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (k, 4) with every box of ``b`` (m, 4), boxes ``[row0, col0, row1, col1)``.

    >>> box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 1], [20, 20, 30, 30]])).tolist()
    [[0.1, 0.0]]
    """
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    rows = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    cols = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = rows * cols
    area_a, area_b = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _boxes(labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes of the labels present in ``labelled`` and those labels."""
    found = [(i + 1, s) for i, s in enumerate(ndimage.find_objects(labelled)) if s is not None]
    boxes = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop] for _, s in found], dtype=np.int64)
    return boxes.reshape(-1, 4), np.array([i for i, _ in found], dtype=np.int64)


def _regions(frame_map: np.ndarray, level: float, scored: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes and (if ``scored``) scores, the map's maximum inside, of the components of ``frame_map >= level``."""
    labelled, n = ndimage.label(frame_map >= level, structure=_EIGHT)
    if n == 0:
        return np.zeros((0, 4), dtype=np.int64), np.zeros(0)
    boxes, ids = _boxes(labelled)
    if not scored:
        return boxes, None
    return boxes, np.asarray(ndimage.maximum(frame_map, labelled, ids), dtype=np.float64).reshape(-1)


@dataclass
class GroundTruthRegions:
    """Ground-truth regions: per frame their boxes and global region numbers; per region its track."""

    boxes: list[np.ndarray]
    region: list[np.ndarray]
    track: np.ndarray
    tracks: int

    @property
    def regions(self) -> int:
        return len(self.track)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def ground_truth_tracks(masks: np.ndarray | None, video: np.ndarray, tracks: np.ndarray | None = None
                        ) -> GroundTruthRegions:
    """The ground-truth regions of each frame and the track of each (see the module docstring).

    ``tracks``, if given, is an int array shaped like the masks: 0 outside anomalies, else the
    anomaly's track id (one id is one track within a video; ids may repeat across videos).
    """
    video = np.asarray(video)
    n = len(video)
    if masks is None and tracks is None:
        raise DataError("masks: expected the ground-truth masks (N, h, w), or track ids through tracks=")
    boxes: list[np.ndarray] = []
    keys: list[Any] = []  # (video, id) with ids; the region itself, linked below, without
    if tracks is not None:
        tracks = np.asarray(tracks)
        if not np.issubdtype(tracks.dtype, np.integer) or tracks.ndim != 3 or len(tracks) != n or tracks.min() < 0:
            raise DataError(f"tracks: expected non-negative integer track ids shaped (N, h, w) with N = {n} frames, "
                            f"got {tracks.dtype} {tracks.shape}")
        if masks is not None and not np.array_equal(np.asarray(masks) > 0, tracks > 0):
            raise DataError("tracks and masks disagree: a pixel must have a track id exactly where its mask is set")
        for i in range(n):
            b, ids = _boxes(tracks[i])
            boxes.append(b)
            keys += [(video[i].item(), int(k)) for k in ids]
    else:
        for i in range(n):
            boxes.append(_boxes(ndimage.label(masks[i], structure=_EIGHT)[0])[0])
    start = np.cumsum([0] + [len(b) for b in boxes])
    region = [np.arange(start[i], start[i + 1]) for i in range(n)]
    if tracks is not None:
        ids: dict[Any, int] = {}
        track = np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)
        return GroundTruthRegions(boxes, region, track, len(ids))
    parent = list(range(int(start[-1])))
    for v in np.unique(video):
        frames = np.flatnonzero(video == v)
        for prev, cur in zip(frames[:-1], frames[1:]):
            if len(boxes[prev]) and len(boxes[cur]):
                for a, b in zip(*np.nonzero(box_iou(boxes[prev], boxes[cur]) > 0)):
                    parent[_find(parent, int(region[prev][a]))] = _find(parent, int(region[cur][b]))
    roots = [_find(parent, i) for i in range(len(parent))]
    _, track = np.unique(np.array(roots, dtype=np.int64), return_inverse=True)
    return GroundTruthRegions(boxes, region, track.reshape(-1).astype(np.int64), int(track.max() + 1) if roots else 0)


def fp_curve_area(fp_per_frame: Sequence[float], rate: Sequence[float], max_fp: float = 1.0) -> float:
    """Area of the detection-rate curve over ``0 <= fp <= max_fp``, divided by ``max_fp``.

    The points (with ``(0, 0)`` added) become ``r(x) = max{rate : fp <= x}`` at each point's ``fp``,
    joined linearly, held level after the last point.

    >>> fp_curve_area([0.0, 1.0], [1.0, 0.0]), fp_curve_area([1.0], [1.0]), fp_curve_area([2.0], [1.0])
    (1.0, 0.5, 0.25)
    """
    x = np.concatenate([[0.0], np.asarray(fp_per_frame, dtype=np.float64)])
    y = np.concatenate([[0.0], np.asarray(rate, dtype=np.float64)])
    order = np.lexsort((-y, x))
    x, y = x[order], np.maximum.accumulate(y[order])
    last = np.r_[x[1:] != x[:-1], True]  # the highest rate at each distinct fp
    x, y = x[last], y[last]
    inside = x < max_fp
    xs = np.concatenate([x[inside], [max_fp]])
    ys = np.concatenate([y[inside], [np.interp(max_fp, x, y)]])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / max_fp)


def _detected_tracks(hits: np.ndarray, gt: GroundTruthRegions, alpha: float) -> np.ndarray:
    """Per track: whether at least ``alpha`` of its regions are hit (``hits``: per region, 0/1 or counts)."""
    size = np.bincount(gt.track, minlength=gt.tracks)
    return np.bincount(gt.track, weights=hits, minlength=gt.tracks) >= np.ceil(alpha * size - 1e-9)


def _check(maps: np.ndarray, masks: np.ndarray | None, video: np.ndarray, tracks: np.ndarray | None,
           beta: float, alpha: float, max_fp: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    maps, video = np.asarray(maps), np.asarray(video)
    maps = maps if maps.dtype.kind == "f" else maps.astype(np.float64)  # float32 maps stay float32
    if not np.isfinite(maps).all():
        finite_scores(maps, "anomaly-map values")  # raises, naming the first
    if maps.ndim != 3 or len(maps) == 0 or video.shape != (len(maps),):
        raise DataError(f"maps {maps.shape} and video {video.shape}: expected maps (N, h, w) and one video id per map")
    if masks is None and tracks is None:
        raise DataError("masks: expected the ground-truth masks (N, h, w), or track ids through tracks=")
    for name, arr in (("masks", masks), ("tracks", tracks)):
        if arr is not None and np.shape(arr) != maps.shape:
            raise DataError(f"{name} {np.shape(arr)} and maps {maps.shape} differ; expected one {name} pixel per "
                            "map pixel (resize the masks to the maps)")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
            raise DataError("masks: expected 0/1 or boolean pixels (pass track ids through tracks=)")
        masks = masks.astype(bool)
    for name, value in (("beta", beta), ("alpha", alpha)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{name} must be a fraction in (0, 1], got {value!r}")
    if not max_fp > 0:
        raise ConfigError(f"max_fp must be > 0 false positives per frame, got {max_fp!r}")
    return maps, masks, video


def _sweep_resegmented(maps: np.ndarray, gt: GroundTruthRegions, levels: np.ndarray, beta: float, alpha: float):
    peak = maps.reshape(len(maps), -1).max(axis=1)
    fp, rbdr, tbdr = [], [], []
    for t in levels:
        hit, false = np.zeros(gt.regions), 0
        for i in np.flatnonzero(peak >= t):
            boxes, _ = _regions(maps[i], t, scored=False)
            match = box_iou(boxes, gt.boxes[i]) >= beta - _EPS
            hit[gt.region[i][match.any(axis=0)]] = 1
            false += int((~match.any(axis=1)).sum())
        fp.append(false / len(maps))
        rbdr.append(hit.mean() if gt.regions else np.nan)
        tbdr.append(_detected_tracks(hit, gt, alpha).mean() if gt.tracks else np.nan)
    return np.array(fp), np.array(rbdr), np.array(tbdr)


def _sweep_fixed(maps: np.ndarray, gt: GroundTruthRegions, level: float, thresholds: np.ndarray | None,
                 beta: float, alpha: float):
    best = np.full(gt.regions, -np.inf)  # per ground-truth region: the highest score of a region detecting it
    false_scores, all_scores = [], []
    for i in range(len(maps)):
        boxes, scores = _regions(maps[i], level)
        match = box_iou(boxes, gt.boxes[i]) >= beta - _EPS
        for j in range(match.shape[1]):
            if match[:, j].any():
                best[gt.region[i][j]] = max(best[gt.region[i][j]], scores[match[:, j]].max())
        false_scores.append(scores[~match.any(axis=1)])
        all_scores.append(scores)
    levels = np.unique(np.concatenate(all_scores))[::-1] if thresholds is None else thresholds
    false = np.sort(np.concatenate(false_scores))
    fp = (len(false) - np.searchsorted(false, levels, side="left")) / len(maps)
    # a track is detected at t when its k-th best region score is >= t, k = ceil(alpha * regions)
    size = np.bincount(gt.track, minlength=gt.tracks)
    need = np.maximum(np.ceil(alpha * size - 1e-9).astype(int), 1)
    track_score = np.array([np.sort(best[gt.track == k])[::-1][need[k] - 1] for k in range(gt.tracks)])
    return levels, fp, _share_at_least(best, levels), _share_at_least(track_score, levels)


def _share_at_least(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per level: the fraction of ``values`` at or above it (NaN without values)."""
    if len(values) == 0:
        return np.full(len(levels), np.nan)
    ordered = np.sort(values)
    return (len(ordered) - np.searchsorted(ordered, levels, side="left")) / len(ordered)


def rbdc_tbdc(maps: np.ndarray, masks: np.ndarray | None, video: np.ndarray, *, beta: float = 0.1,
              alpha: float = 0.1, thresholds: int | Sequence[float] | np.ndarray = 100, segment_at: float | None = None,
              tracks: np.ndarray | None = None, max_fp: float = 1.0) -> dict[str, Any]:
    """RBDC and TBDC of anomaly ``maps`` (N, h, w) against ``masks`` (N, h, w), frames grouped by ``video``.

    The sweep and the summary are as the module docstring says. Frames of a video are taken in array order.
    Returns ``rbdc``, ``tbdc`` (None without ground-truth regions), the counts of ``regions``, ``tracks``
    and ``frames``, and the ``curve``: per threshold (descending) ``fp_per_frame``, ``rbdr`` and ``tbdr``.
    """
    maps, masks, video = _check(maps, masks, video, tracks, beta, alpha, max_fp)
    gt = ground_truth_tracks(masks, video, tracks)
    count = isinstance(thresholds, (int, np.integer))
    given = None if count else np.sort(finite_scores(thresholds, "thresholds"))[::-1]
    if given is None and (isinstance(thresholds, bool) or thresholds < 1):
        raise ConfigError(f"thresholds must be a count >= 1 or an array of map levels, got {thresholds!r}")
    if segment_at is not None:
        if not np.isfinite(segment_at):
            raise ConfigError(f"segment_at must be a finite map level, got {segment_at!r}")
        levels, fp, rbdr, tbdr = _sweep_fixed(maps, gt, float(segment_at), given, beta, alpha)
    else:
        if given is None:
            peak = maps.reshape(len(maps), -1).max(axis=1)
            given = np.unique(np.quantile(peak, np.linspace(0.0, 1.0, int(thresholds))))[::-1]
        levels = given
        fp, rbdr, tbdr = _sweep_resegmented(maps, gt, levels, beta, alpha)
    curve = {"threshold": levels.tolist(), "fp_per_frame": fp.tolist(), "rbdr": rbdr.tolist(), "tbdr": tbdr.tolist()}
    return {
        "rbdc": fp_curve_area(fp, rbdr, max_fp) if gt.regions else None,
        "tbdc": fp_curve_area(fp, tbdr, max_fp) if gt.tracks else None,
        "regions": gt.regions, "tracks": gt.tracks, "frames": len(maps), "curve": curve,
    }
