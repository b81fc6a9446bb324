"""``memad.explain(detector, data)``: what a trained detector's memory holds and how it reads, as arrays.

Two passes, the memory's reads recorded (:mod:`memad.scoring.reads`):

- the **training split**, the items as trained (no test-time writes, chunked): each item's usage and its
  ``k`` nearest training query positions, cropped from the input frames by the receptive-field rule of
  :mod:`memad.scoring.reads` (the atlas), the distances, and the item geometry;
- the **test split**, scored as ``memad eval`` scores it (test-time writes included): every frame's
  assignment and distance maps, per-video usage, and the frames to show (``frames``, default the
  top-scored ones).

:meth:`Explanation.write` draws the figures and ``explain.json`` (:mod:`memad.explain.figures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..data import VideoSet, open_split
from ..errors import ConfigError, DataError
from ..explanation import explained_part
from ..scoring.maps import TOP_MAPS
from ..scoring.profile import LevelProfile, ReadProfile, item_quantiles
from ..scoring.reads import recording, slot_frame
from ..scoring.runner import score_videos, video_signals
from ..scoring.scores import Scores
from .stats import Usage, geometry, query_margins, usage

__all__ = ["explain", "Explanation", "LevelReport", "parse_frames"]

#: Frames apart (in one video) that two of the top frames shown must be.
TOP_APART = 10


@dataclass
class LevelReport:
    """One memory level explained (see :func:`explain`). Exemplar arrays are nearest first; an item with
    fewer than ``k`` assigned positions has ``inf`` distances (and black crops) in the rest."""

    level: int | None
    cell: tuple[int, int]
    grid: tuple[int, ...]
    num_items: int
    per_input: bool
    train: Usage
    exemplars: np.ndarray  # (M, k, C, h, w) uint8
    exemplar_distance: np.ndarray  # (M, k)
    exemplar_source: list[list[dict[str, Any]]]  # per item, per exemplar: video, frame, i, j, box
    distance_quantiles: list[list[float] | None]
    geometry: dict[str, Any]
    test_assignment: np.ndarray  # (N, *grid) int32, in the order of Scores.frame
    test_distance: np.ndarray  # (N, *grid) float16
    test_usage: dict[str, Usage] = field(default_factory=dict)
    margins: np.ndarray | None = None  # training queries' L2 margins |q - p_2| - |q - p_1| (None: not given)

    @property
    def name(self) -> str:
        return "unit" if self.level is None else f"level {self.level}"


@dataclass
class Explanation:
    """What :func:`explain` returns: the levels, the test scores, the test frames and the chosen frames."""

    detector_name: str
    levels: list[LevelReport]
    scores: Scores
    test: VideoSet
    chosen: list[int]  # positions in scores.frame
    train_samples: int
    settings: dict[str, Any]
    score_offset: int
    frames: int

    def frame_label(self, pos: int) -> str:
        """``VIDEO:INDEX`` of the scored frame at position ``pos``."""
        v = int(self.scores.video[pos])
        return f"{self.test.names[v]}:{int(self.scores.frame[pos] - self.test.offsets[v])}"

    def write(self, out: Any) -> dict[str, Any]:
        """Write the figures and ``explain.json`` into folder ``out``; returns the files written."""
        from .figures import write_all

        return write_all(self, out)


def split_frames(specs: Sequence[str], videos: VideoSet) -> list[int]:
    """Indices into the split's frames of frames named ``VIDEO:INDEX`` (INDEX 0-based in the video)."""
    names = {n: i for i, n in enumerate(videos.names)}
    out = []
    for spec in specs:
        name, sep, index = str(spec).rpartition(":")
        if not sep or name not in names or not index.lstrip("-").isdigit():
            raise ConfigError(f"--frames {spec!r}: expected VIDEO:INDEX with VIDEO one of the test videos "
                              f"({', '.join(videos.names[:8])}{'...' if len(videos.names) > 8 else ''})")
        v, i = names[name], int(index)
        if not 0 <= i < videos.lengths[v]:
            raise ConfigError(f"--frames {spec!r}: video {name} has frames 0..{videos.lengths[v] - 1}")
        out.append(int(videos.offsets[v]) + i)
    return out


def parse_frames(specs: Sequence[str], videos: VideoSet, scores: Scores) -> list[int]:
    """Positions in ``scores.frame`` of frames named ``VIDEO:INDEX`` (INDEX 0-based in the video)."""
    where = {int(f): p for p, f in enumerate(scores.frame)}
    out = []
    for spec, f in zip(specs, split_frames(specs, videos)):
        if f not in where:
            name, _, index = str(spec).rpartition(":")
            raise ConfigError(f"--frames {spec!r}: only the frames of video {name} with a full clip before them "
                              f"are scored; frame {index} is not")
        out.append(where[f])
    return out


def top_frames(scores: Scores, n: int, apart: int = TOP_APART) -> list[int]:
    """The ``n`` top-scored frames, no two of one video closer than ``apart`` frames."""
    chosen: list[int] = []
    for p in np.argsort(-scores.scores, kind="stable"):
        if all(scores.video[p] != scores.video[q] or abs(int(scores.frame[p]) - int(scores.frame[q])) >= apart
               for q in chosen):
            chosen.append(int(p))
        if len(chosen) == n:
            break
    return chosen


def _train_pass(detector: Any, data: Any, k: int, context: float, distinct: bool
                ) -> tuple[ReadProfile, np.ndarray, VideoSet]:
    cfg = detector.config
    split = open_split(data, "training", cfg)
    profile = ReadProfile(cfg["data"]["channels"], k=k, context=context, distinct=distinct)
    update = cfg["test"]["update"]
    cfg["test"]["update"] = False  # the items as trained: no test-time writes (and so, batched)
    try:
        with recording(detector.network, profile):
            run = video_signals(detector.network, split)
    finally:
        cfg["test"]["update"] = update
    return profile.finish(), run.frame, split


def _source(lp: LevelProfile, m: int, n: int, train_frame: np.ndarray, split: VideoSet, detector: Any,
            context: float) -> dict[str, Any]:
    """Where exemplar ``n`` of item ``m`` came from: the video, its frame cropped, the grid position, the box."""
    from ..scoring.reads import crop_window

    sample, slot, i, j = (int(v) for v in lp.best_src[m, n])
    cfg = detector.config["data"]
    frames = cfg["frames"]
    start = int(train_frame[sample]) - detector.score_offset
    f = slot_frame(slot, lp.grid[0], frames) if len(lp.grid) == 3 else frames - 1
    split_index = start + f + (1 if cfg["input"] == "differences" else 0)
    v = int(split.video_index[split_index])
    return {"video": split.names[v], "frame": split_index - int(split.offsets[v]), "i": i, "j": j,
            "box": list(crop_window(i, j, lp.cell, context)), "distance": round(float(lp.best_d[m, n]), 6)}


def explain(detector: Any, data: Any, *, frames: Sequence[str] | None = None, top: int = 4, k: int = 8,
            context: float = 0.5, distinct: bool = False, labels: Any = None) -> Explanation:
    """Explain ``detector``'s memory on ``data`` (training and test splits; see the module docstring).

    ``frames`` names test frames to show (``"VIDEO:INDEX"``), default the ``top`` top-scored ones; ``k``
    exemplars per item (``distinct``: at most one per grid position); ``context`` widens each crop by that
    many cells on every side. A memory that
    does not explain its reads is a :class:`memad.ConfigError` (its :meth:`memad.Memory.explain`).
    """
    network = detector.network
    if explained_part(network) is None:
        network.memory.explain(None)  # raises the memory's own message
    if k < 1:
        raise ConfigError(f"k: expected at least 1 exemplar per item, got {k}")
    profile, train_frame, train_split = _train_pass(detector, data, k, context, distinct)
    if not profile.levels:
        raise DataError(f"{train_split.source}: no training clip was scored, so no read was recorded")
    test = open_split(data, "testing", detector.config, labels=labels)
    pinned = split_frames(frames, test) if frames else []
    reads = ReadProfile(detector.config["data"]["channels"], k=1, distances=False, keep_maps=True, crops=False)
    with recording(network, reads):
        # Enough top maps that top_frames' picks (each within `apart` of no earlier one) have theirs.
        scores = score_videos(detector, test, keep_maps=max(TOP_MAPS, (top - 1) * (2 * TOP_APART - 1) + 1),
                              keep_frames=pinned)
    if reads.samples != len(scores.frame):
        raise DataError(f"{test.source}: {reads.samples} reads recorded for {len(scores.frame)} scored frames")
    chosen = parse_frames(frames, test, scores) if frames else top_frames(scores, top)
    alpha = getattr(network.memory, "margin", None)
    levels = []
    for lp, tp in zip(profile.levels, reads.finish().levels):
        assigned, dist, runner = lp.kept()
        dim = int(lp.items.shape[-1]) if lp.items is not None else None
        margins = query_margins(dist, runner, dim) if runner is not None and dim is not None else None
        assign_maps, dist_maps = tp.maps()
        flat = assign_maps.reshape(len(assign_maps), -1).numpy()
        per_video = {}
        for v, name in enumerate(test.names):
            rows = flat[scores.video == v]
            if len(rows):
                per_video[name] = usage(np.bincount(rows.reshape(-1), minlength=lp.num_items))
        levels.append(LevelReport(
            level=lp.level, cell=lp.cell, grid=lp.grid, num_items=lp.num_items, per_input=lp.per_input,
            train=usage(lp.usage.numpy()),
            exemplars=lp.best_patch.numpy() if lp.best_patch is not None else np.zeros((lp.num_items, k, 1, 1, 1),
                                                                                       np.uint8),
            exemplar_distance=lp.best_d.numpy(),
            exemplar_source=[[_source(lp, m, n, train_frame, train_split, detector, context)
                              for n in range(k) if bool(torch.isfinite(lp.best_d[m, n]))] for m in range(lp.num_items)],
            distance_quantiles=item_quantiles(assigned, dist, lp.num_items, (0.5, 0.9, 0.99)),
            geometry=geometry(lp.items.numpy() if lp.items is not None else None, margins,
                              alpha if margins is not None and isinstance(alpha, (int, float)) else None),
            test_assignment=assign_maps.numpy(), test_distance=dist_maps.numpy(), test_usage=per_video,
            margins=margins))
    return Explanation(detector.config["name"], levels, scores, test, chosen, profile.samples,
                       {"k": k, "context": context, "distinct": distinct, "top": top, "frames": list(frames or [])},
                       detector.score_offset, detector.config["data"]["frames"])
