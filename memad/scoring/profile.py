"""What a pass's memory reads add up to, per level: how often each item is read, its ``k`` nearest query
positions (with the input pixels each stands for, :mod:`memad.scoring.reads`) and the distances.

:class:`ReadProfile` is the callback :func:`memad.scoring.reads.recording` feeds. Calibration keeps its
:meth:`~ReadProfile.summary` (usage, per-item distance quantiles on normal frames, exemplar crops as
PNG) in the calibration, where ``memad detect``'s report reads it; ``memad explain`` keeps the arrays.
Everything is counted on the device the network runs on; crops are cut only for positions that beat an
item's current ``k``-th nearest.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..interfaces import LevelExplanation
from .reads import crop_cells, input_frames, slot_frame

__all__ = ["ReadProfile", "LevelProfile", "png_strip", "item_quantiles"]

#: Distances kept per level for the quantiles before they are thinned (every other one, repeatedly).
DISTANCE_CAP = 4_000_000


@dataclass
class LevelProfile:
    """One level's figures over a pass (see :class:`ReadProfile`); tensors on the CPU once finished.

    ``best_src`` rows are ``(sample, slot, i, j)``: the pass's sample number, the time slot (0 for a
    2D grid) and the grid position of each exemplar; ``maps`` (with ``keep_maps``) hold every sample's
    assignment and distance maps in pass order.
    """

    level: int | None
    cell: tuple[int, int]
    grid: tuple[int, ...]
    num_items: int
    per_input: bool
    k: int
    usage: Tensor
    best_d: Tensor
    best_src: Tensor
    best_patch: Tensor | None = None
    items: Tensor | None = None
    distances: list[Tensor] = field(default_factory=list)
    assigned: list[Tensor] = field(default_factory=list)
    runner_up: list[Tensor] = field(default_factory=list)
    assignment_maps: list[Tensor] = field(default_factory=list)
    distance_maps: list[Tensor] = field(default_factory=list)
    stride: int = 1

    def kept(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The kept positions' items, distances and runner-up distances (None when the memory gives none)."""
        def cat(xs: list[Tensor]) -> np.ndarray:
            return torch.cat(xs).numpy() if xs else np.zeros(0)

        return cat(self.assigned).astype(np.int64), cat(self.distances), cat(self.runner_up) if self.runner_up \
            else None

    def maps(self) -> tuple[Tensor, Tensor]:
        """Every sample's assignment ``(N, *grid)`` int32 and distance ``(N, *grid)`` float16 maps."""
        return torch.cat(self.assignment_maps), torch.cat(self.distance_maps)


class ReadProfile:
    """Accumulates the explanations of a pass (the callback of :func:`memad.scoring.reads.recording`).

    Args:
        channels: channels per frame (``data.channels``), to cut crops from the stacked input.
        k: exemplars kept per item: its ``k`` nearest query positions over the pass.
        context: crop context, in cells (:func:`memad.scoring.reads.crop_window`).
        distances: keep every position's distance (thinned past :data:`DISTANCE_CAP`) for quantiles.
        keep_maps: keep every sample's assignment and distance maps (frame views, timelines).
        crops: cut exemplar crops (False: only their distances and positions).
        distinct: at most one exemplar per item and grid position (a static camera's nearest positions
            are otherwise often one spot in consecutive frames).
    """

    def __init__(self, channels: int, k: int = 4, context: float = 0.5, distances: bool = True,
                 keep_maps: bool = False, crops: bool = True, distinct: bool = False):
        self.channels, self.k, self.context, self.distinct = channels, int(k), float(context), distinct
        self.keep_distances, self.keep_maps, self.crops = distances, keep_maps, crops
        self.levels: list[LevelProfile] = []
        self.samples = 0

    def __call__(self, x: Tensor, levels: Sequence[LevelExplanation]) -> None:
        if not self.levels:
            self.levels = [self._new(e) for e in levels]
        frames = input_frames(x, self.channels) if self.crops else None
        for lp, e in zip(self.levels, levels):
            self._add(lp, e, frames)
        self.samples += x.shape[0]

    def _new(self, e: LevelExplanation) -> LevelProfile:
        m, dev = e.num_items, e.assignment.device
        return LevelProfile(e.level, tuple(e.cell or (1, 1)), tuple(e.assignment.shape[1:]), m, e.per_input, self.k,
                            torch.zeros(m, dtype=torch.long, device=dev),
                            torch.full((m, self.k), float("inf"), device=dev),
                            torch.full((m, self.k, 4), -1, dtype=torch.long, device=dev))

    def _add(self, lp: LevelProfile, e: LevelExplanation, frames: Tensor | None) -> None:
        a, d = e.assignment.reshape(-1), e.distance.reshape(-1).float()
        lp.usage += torch.bincount(a, minlength=lp.num_items)
        lp.items = e.items if not e.per_input else None
        if self.keep_maps:
            lp.assignment_maps.append(e.assignment.to(torch.int32).cpu())
            lp.distance_maps.append(e.distance.half().cpu())
        if self.keep_distances:
            self._keep_distances(lp, a, d, None if e.runner_up is None else e.runner_up.reshape(-1).float())
        self._merge(lp, a, d, frames)

    def _keep_distances(self, lp: LevelProfile, a: Tensor, d: Tensor, r: Tensor | None) -> None:
        step = slice(None, None, lp.stride)
        lp.assigned.append(a[step].to(torch.int32).cpu())
        lp.distances.append(d[step].cpu())
        if r is not None:
            lp.runner_up.append(r[step].cpu())
        if sum(len(t) for t in lp.distances) > DISTANCE_CAP:  # thin what is kept, then keep half as many
            lp.stride *= 2
            for name in ("assigned", "distances", "runner_up"):
                kept = getattr(lp, name)
                if kept:
                    setattr(lp, name, [torch.cat(kept)[::2]])

    def _merge(self, lp: LevelProfile, a: Tensor, d: Tensor, frames: Tensor | None) -> None:
        """Keep, per item, the ``k`` nearest positions seen so far (crops cut for the newcomers only)."""
        cand = torch.nonzero(d < lp.best_d[a, -1]).flatten()
        if cand.numel() == 0:
            return
        positions = int(np.prod(lp.grid))
        if self.distinct:  # the nearest sample at each (item, position) only
            cand = cand[_first_per_key(a[cand] * positions + cand % positions, d[cand])]
        sel = cand[_k_smallest_per_group(a[cand], d[cand], lp.num_items, self.k)]
        src = _unravel(sel, lp.grid, self.samples)
        patches = self._crop(lp, src, frames) if frames is not None else None
        m, k = lp.num_items, self.k
        all_a = torch.cat([torch.arange(m, device=a.device).repeat_interleave(k), a[sel]])
        all_d = torch.cat([lp.best_d.reshape(-1), d[sel]])
        if self.distinct:
            all_src = torch.cat([lp.best_src.reshape(-1, 4), src])
            pos = (all_src[:, 1] * lp.grid[-2] + all_src[:, 2]) * lp.grid[-1] + all_src[:, 3]
            unique = torch.zeros_like(all_d, dtype=torch.bool)
            unique[_first_per_key(all_a * positions + pos, all_d)] = True
            all_d = torch.where(unique, all_d, torch.full_like(all_d, float("inf")))
        keep = _k_smallest_per_group(all_a, all_d, m, k)
        rank = _rank_in_group(all_a[keep], all_d[keep], m)
        best_d = torch.full_like(lp.best_d, float("inf"))
        best_d[all_a[keep], rank] = all_d[keep]
        best_src = torch.full_like(lp.best_src, -1)
        best_src[all_a[keep], rank] = torch.cat([lp.best_src.reshape(-1, 4), src])[keep]
        if patches is not None:
            if lp.best_patch is None:
                lp.best_patch = patches.new_zeros((m, k, *patches.shape[1:]))
            pool = torch.cat([lp.best_patch.reshape(-1, *patches.shape[1:]), patches])
            best_patch = torch.zeros_like(lp.best_patch)
            best_patch[all_a[keep], rank] = pool[keep]
            lp.best_patch = best_patch
        lp.best_d, lp.best_src = best_d, best_src

    def _crop(self, lp: LevelProfile, src: Tensor, frames: Tensor) -> Tensor:
        b, n_frames = frames.shape[:2]
        sample = src[:, 0] - self.samples
        if len(lp.grid) == 3:  # a 3D grid: the input frame in the middle of the position's time slot
            frame = slot_frame(src[:, 1], lp.grid[0], n_frames)
        else:
            frame = torch.full_like(sample, n_frames - 1)
        flat = frames.reshape(b * n_frames, *frames.shape[2:])
        return crop_cells(flat, sample * n_frames + frame, src[:, 2], src[:, 3], lp.cell, self.context)

    def finish(self) -> "ReadProfile":
        """Move everything to the CPU (call once the pass is over)."""
        for lp in self.levels:
            for name in ("usage", "best_d", "best_src", "best_patch", "items"):
                value = getattr(lp, name)
                if value is not None:
                    setattr(lp, name, value.detach().cpu())
        return self

    def summary(self, quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, Any]:
        """Plain data (JSON-friendly) for a calibration: per level its usage, each item's distance quantiles
        over the positions assigned to it, and its exemplars as one PNG strip (base64), nearest first."""
        self.finish()
        levels = []
        for lp in self.levels:
            assigned, dist, _ = lp.kept()
            strips = [png_strip(lp.best_patch[m][torch.isfinite(lp.best_d[m])]) if lp.best_patch is not None
                      else None for m in range(lp.num_items)]
            levels.append({
                "level": lp.level, "cell": list(lp.cell), "grid": list(lp.grid), "items": lp.num_items,
                "per_input": lp.per_input, "usage": lp.usage.tolist(), "quantiles": list(quantiles),
                "distance": item_quantiles(assigned, dist, lp.num_items, quantiles),
                "exemplar_distance": [[round(float(v), 6) for v in row if np.isfinite(v)] for row in lp.best_d.numpy()],
                "exemplars": strips})
        return {"samples": self.samples, "context": self.context, "levels": levels}


def item_quantiles(assigned: np.ndarray, distance: np.ndarray, items: int, quantiles: Sequence[float]
                   ) -> list[list[float] | None]:
    """Per item, the ``quantiles`` of the distances of the positions assigned to it (None: none were).

    >>> item_quantiles(np.array([0, 0, 0, 2]), np.array([1.0, 2.0, 3.0, 5.0]), 3, [0.5])
    [[2.0], None, [5.0]]
    """
    order = np.argsort(assigned, kind="stable")
    bounds = np.searchsorted(assigned[order], np.arange(items + 1))
    out: list[list[float] | None] = []
    for m in range(items):
        values = distance[order[bounds[m]:bounds[m + 1]]]
        out.append([round(float(v), 6) for v in np.quantile(values, quantiles)] if len(values) else None)
    return out


def png_strip(patches: Tensor, gap: int = 1) -> str | None:
    """Crops ``(k, C, h, w)`` uint8 side by side (1-pixel dark gaps) as a base64 PNG; None for none."""
    from PIL import Image

    if patches.shape[0] == 0:
        return None
    k, c, h, w = patches.shape
    strip = np.full((h, k * w + (k - 1) * gap, 3), 40, np.uint8)
    for n in range(k):
        img = patches[n].permute(1, 2, 0).numpy()
        strip[:, n * (w + gap):n * (w + gap) + w] = img if c == 3 else np.repeat(img[..., :1], 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _rank_in_group(group: Tensor, value: Tensor, groups: int) -> Tensor:
    """Each entry's rank by ``value`` among the entries of its ``group`` (0 = smallest)."""
    order = torch.argsort(value, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    counts = torch.bincount(group, minlength=groups)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(group)
    rank[order] = torch.arange(len(group), device=group.device) - starts[group[order]]
    return rank


def _first_per_key(key: Tensor, value: Tensor) -> Tensor:
    """Indices of the entry of smallest ``value`` for every distinct ``key``."""
    order = torch.argsort(value, stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = key[order][1:] != key[order][:-1]
    return order[first]


def _k_smallest_per_group(group: Tensor, value: Tensor, groups: int, k: int) -> Tensor:
    """Indices of the ``k`` smallest ``value`` entries of every ``group`` (all, where a group has fewer)."""
    return torch.nonzero((_rank_in_group(group, value, groups) < k) & torch.isfinite(value)).flatten()


def _unravel(flat: Tensor, grid: tuple[int, ...], first_sample: int) -> Tensor:
    """Flat position indices of a batch's ``(B, *grid)`` maps -> rows ``(sample, slot, i, j)``."""
    per = int(np.prod(grid))
    sample, rest = flat // per + first_sample, flat % per
    h, w = grid[-2], grid[-1]
    slot = rest // (h * w) if len(grid) == 3 else torch.zeros_like(rest)
    return torch.stack([sample, slot, (rest % (h * w)) // w, rest % w], dim=1)
