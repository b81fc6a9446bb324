"""Memory update rules: how prototype items move towards the queries assigned to them.

All rules see unit-norm ``items`` (M, D) and ``queries`` (K, D) and run without grad; given no
queries (K = 0: every frame of a test batch gated out) each returns the items unchanged, as the
:class:`memad.UpdateRule` contract says.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from memad import UpdateRule


def nearest_items(items: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
    """Cosine similarities (K, M) and each query's nearest item (K,)."""
    sim = queries @ items.t()
    return sim, sim.argmax(dim=1)


class MNADUpdate(UpdateRule):
    """Paper eq. 3-5: ``p_m <- normalise(p_m + sum_{k in U_m} v_km / max v . q_k)``.

    ``v`` is the softmax over the queries of the similarities, ``U_m`` the queries whose
    nearest item is ``m``. ``normalise="assigned"`` divides by the max of ``v_km`` over
    ``U_m`` (the paper); ``"all"`` by the max over every query (the official code).
    """

    def __init__(self, normalise: Literal["assigned", "all"] = "assigned"):
        if normalise not in ("assigned", "all"):
            raise ValueError(f"update.normalise: expected 'assigned' or 'all', got {normalise!r}")
        self.normalise = normalise

    def __call__(self, items: Tensor, queries: Tensor) -> Tensor:
        if queries.shape[0] == 0:
            return items
        sim, assign = nearest_items(items, queries)
        v = torch.softmax(sim, dim=0)  # per item, over the queries
        weight = v.gather(1, assign[:, None]).squeeze(1)  # v_{k, assign(k)}
        if self.normalise == "all":
            denom = v.max(dim=0).values
        else:
            denom = torch.zeros(items.shape[0], device=items.device, dtype=weight.dtype)
            denom = denom.scatter_reduce(0, assign, weight, reduce="amax", include_self=False)
        coef = weight / denom[assign].clamp_min(torch.finfo(weight.dtype).tiny)
        delta = torch.zeros_like(items).index_add_(0, assign, coef[:, None] * queries)
        return F.normalize(items + delta, dim=1)


class MNADCodeUpdate(MNADUpdate):
    """The official code's update: normalised by the max over all queries."""

    def __init__(self) -> None:
        super().__init__(normalise="all")


class EMAUpdate(UpdateRule):
    """Momentum update: ``p_m <- normalise(momentum p_m + (1 - momentum) mean_{U_m} q)``.

    Items that no query chose stay where they are.
    """

    def __init__(self, momentum: float = 0.99):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"update.momentum: expected a value in [0, 1], got {momentum!r}")
        self.momentum = momentum

    def __call__(self, items: Tensor, queries: Tensor) -> Tensor:
        if queries.shape[0] == 0:
            return items
        _, assign = nearest_items(items, queries)
        sums = torch.zeros_like(items).index_add_(0, assign, queries)
        counts = torch.bincount(assign, minlength=items.shape[0]).to(items.dtype)
        chosen = counts > 0
        mean = sums / counts.clamp_min(1)[:, None]
        new = torch.where(chosen[:, None], self.momentum * items + (1 - self.momentum) * mean, items)
        return F.normalize(new, dim=1)


class NoUpdate(UpdateRule):
    """Items stay as they are (frozen after initialisation or training)."""

    changes_items = False

    def __call__(self, items: Tensor, queries: Tensor) -> Tensor:
        return items
