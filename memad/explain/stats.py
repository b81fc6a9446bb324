"""The numbers of a memory explanation: item usage (shares, effective number, dead and rare items) and
item geometry (pairwise distances, each item's nearest other item, the query margin the separateness
loss enlarges).

Distances between items are Euclidean (L2), the units of MNAD's separateness triplet loss and of its
margin ``alpha``; a query's margin is ``|q - p_2| - |q - p_1|``, its distance to the nearest other item
less its distance to its own (the triplet loss is ``max(0, alpha - margin)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..explanation import effective_number

__all__ = ["Usage", "usage", "geometry", "query_margins", "RARE_SHARE"]

#: An item is rare when its share of the reads is below this fraction of an equal share (1/M).
RARE_SHARE = 0.1


@dataclass
class Usage:
    """How often each item was read: ``counts`` ``(M,)`` of query positions, their ``share``, the
    ``effective`` number of items (``exp`` of the entropy of the shares), and the ``dead`` (never read)
    and ``rare`` (read, but below :data:`RARE_SHARE` of an equal share) items' indices."""

    counts: np.ndarray
    share: np.ndarray
    effective: float
    dead: np.ndarray
    rare: np.ndarray

    @property
    def positions(self) -> int:
        return int(self.counts.sum())

    def as_dict(self) -> dict[str, Any]:
        return {"positions": self.positions, "effective_items": round(self.effective, 4),
                "dead_items": self.dead.tolist(), "rare_items": self.rare.tolist(),
                "share": [round(float(v), 6) for v in self.share]}


def usage(counts: np.ndarray) -> Usage:
    """The :class:`Usage` of per-item read counts.

    >>> u = usage(np.array([6, 3, 1, 0]))
    >>> u.share.tolist(), u.dead.tolist(), u.rare.tolist(), round(u.effective, 3)
    ([0.6, 0.3, 0.1, 0.0], [3], [], 2.455)
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = counts.sum()
    share = counts / total if total else np.zeros(len(counts))
    import torch

    effective = effective_number(torch.from_numpy(counts))
    dead = np.flatnonzero(counts == 0)
    rare = np.flatnonzero((counts > 0) & (share < RARE_SHARE / max(len(counts), 1)))
    return Usage(counts, share, effective, dead, rare)


def query_margins(distance: np.ndarray, runner_up: np.ndarray, dim: int) -> np.ndarray:
    """Each query's margin ``|q - p_2| - |q - p_1|`` in L2, from the mean squared differences to its item and
    to the nearest other (:class:`memad.LevelExplanation`'s ``distance`` and ``runner_up``) and the dimension.

    >>> query_margins(np.array([0.25]), np.array([1.0]), 4).tolist()
    [1.0]
    """
    return np.sqrt(dim * np.asarray(runner_up, np.float64)) - np.sqrt(dim * np.asarray(distance, np.float64))


def geometry(items: np.ndarray | None, margins: np.ndarray | None = None, alpha: float | None = None
             ) -> dict[str, Any]:
    """Item geometry: ``pairwise`` L2 distances ``(M, M)``, each item's ``nearest`` other item and its
    distance, their minimum and mean; with the queries' ``margins``, their quantiles and (given the triplet
    margin ``alpha``) the share of queries whose margin is below it (where the separateness loss acts).

    >>> g = geometry(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]))
    >>> g["nearest"], g["nearest_distance"], g["min_nearest_distance"]
    ([2, 2, 0], [1.0, 4.2426, 1.0], 1.0)
    """
    out: dict[str, Any] = {}
    if items is not None and len(items) > 1:
        p = np.asarray(items, np.float64)
        sq = (p**2).sum(1)[:, None] + (p**2).sum(1)[None, :] - 2 * p @ p.T
        pairwise = np.sqrt(np.clip(sq, 0, None))
        np.fill_diagonal(pairwise, 0.0)
        off = pairwise + np.diag(np.full(len(p), np.inf))
        nearest = off.argmin(1)
        near_d = off[np.arange(len(p)), nearest]
        upper = pairwise[np.triu_indices(len(p), 1)]
        out["pairwise"] = np.round(pairwise, 4)
        out["nearest"], out["nearest_distance"] = nearest.tolist(), np.round(near_d, 4).tolist()
        out["min_nearest_distance"] = round(float(near_d.min()), 4)
        out["mean_nearest_distance"] = round(float(near_d.mean()), 4)
        out["mean_pairwise_distance"] = round(float(upper.mean()), 4)
        out["item_norm_mean"] = round(float(np.sqrt((p**2).sum(1)).mean()), 4)
    if margins is not None and len(margins):
        q = np.quantile(margins, [0.01, 0.1, 0.5, 0.9])
        out["query_margin"] = {"mean": round(float(margins.mean()), 4),
                               "quantiles": {"0.01": round(float(q[0]), 4), "0.1": round(float(q[1]), 4),
                                             "0.5": round(float(q[2]), 4), "0.9": round(float(q[3]), 4)}}
        if alpha is not None:
            out["query_margin"]["alpha"] = float(alpha)
            out["query_margin"]["share_below_alpha"] = round(float((margins < alpha).mean()), 4)
    return out
