"""A prototype memory whose read is restricted to each query's k most similar items."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

import memad


def spherical_kmeans(points: Tensor, clusters: int, iterations: int = 10, generator: torch.Generator | None = None
                     ) -> Tensor:
    """Unit-norm centroids ``(clusters, D)`` of unit-norm ``points`` ``(K, D)`` by cosine k-means.

    Starts from distinct random points; a cluster that loses all its points keeps its centroid.
    """
    if points.shape[0] < clusters:
        raise ValueError(f"k-means needs at least {clusters} points, got {points.shape[0]}")
    start = torch.randperm(points.shape[0], generator=generator, device="cpu")[:clusters].to(points.device)
    centroids = points[start].clone()
    for _ in range(iterations):
        assign = (points @ centroids.t()).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        filled = torch.bincount(assign, minlength=clusters) > 0
        centroids = torch.where(filled[:, None], F.normalize(sums, dim=1), centroids)
    return centroids


class TopKMemory(memad.Memory):
    """Unit-norm items; each query reads a softmax over its ``k`` most similar items only.

    The decoder gets ``concat[query, read]``. Losses and the feature distance are MNAD's
    (compactness to the nearest item, a triplet separating nearest and second nearest).

    Args:
        in_channels: query dimension, filled in by memad.
        items: number of items M.
        k: how many of the most similar items a query reads (1 <= k <= M).
        init: ``random`` unit vectors, or ``kmeans`` of the first training batch's queries.
        compactness: weight of the compactness loss.
        separateness: weight of the separateness loss.
        update: a registered update rule (``mnad``, ``ema``, ``none``...) or ``{name: ..., ...}``; memad
            builds it from the config (declared in ``nested_components``).

    Items move outside autograd: ``writes`` is True, so memad's training loop hands each step's
    queries (gathered from every process) to :meth:`write` and keeps the items identical on
    every process; at test time the default protocol writes every frame.
    """

    nested_components = {"update": "update_rule"}

    def __init__(
        self,
        in_channels: int,
        items: int = 10,
        k: int = 3,
        init: Literal["random", "kmeans"] = "random",
        compactness: float = 0.1,
        separateness: float = 0.1,
        update: str | dict | memad.UpdateRule = "mnad",
    ):
        super().__init__()
        if items < 2:
            raise ValueError(f"memory.items: expected at least 2, got {items}")
        if not 1 <= k <= items:
            raise ValueError(f"memory.k: expected 1 <= k <= items={items}, got {k}")
        if init not in ("random", "kmeans"):
            raise ValueError(f"memory.init: expected 'random' or 'kmeans', got {init!r}")
        self.k, self.init = k, init
        self.compactness, self.separateness = compactness, separateness
        # memad builds the nested update rule from the config; a section is built here only when the
        # memory is constructed directly in Python (build_component passes a built rule through).
        self.update_rule = memad.build_component("update_rule", update)
        self.register_buffer("items", F.normalize(torch.rand(items, in_channels), dim=1))
        # Saved with the weights, so a loaded model is not re-initialised by its next batch.
        self.register_buffer("initialised", torch.tensor(init == "random"))

    def out_channels(self, in_channels: int) -> int:
        return 2 * in_channels

    @property
    def writes(self) -> bool:
        return self.update_rule.changes_items

    def read_weights(self, q: Tensor) -> Tensor:
        """``(K, M)`` read weights: softmax over each query's top-k similarities, zero elsewhere."""
        sim = q @ self.items.t()
        top = sim.topk(self.k, dim=1)
        return torch.zeros_like(sim).scatter_(1, top.indices, torch.softmax(top.values, dim=1))

    def forward(self, features: Tensor) -> memad.MemoryOutput:
        b, c, h, w = features.shape
        query = F.normalize(features.float(), dim=1)
        q = query.permute(0, 2, 3, 1).reshape(-1, c)
        if self.training and not bool(self.initialised) and q.shape[0] >= self.items.shape[0]:
            self.items = spherical_kmeans(q.detach(), self.items.shape[0])
            self.initialised.fill_(True)
        weights = self.read_weights(q).detach()
        read = (weights @ self.items).view(b, h, w, c).permute(0, 3, 1, 2)
        nearest = (q @ self.items.t()).topk(2, dim=1).indices
        pos, neg = self.items[nearest[:, 0]], self.items[nearest[:, 1]]
        sq = (q - pos).pow(2)
        compact = sq.mean()
        separate = F.triplet_margin_loss(q, pos, neg, margin=1.0)
        return memad.MemoryOutput(
            read=torch.cat([query, read], dim=1).to(features.dtype),
            loss=self.compactness * compact + self.separateness * separate,
            distance=sq.reshape(b, -1).mean(dim=1).detach(),
            logs={"compact": compact.detach(), "separate": separate.detach()},
            query=query.detach(),
        )

    @torch.no_grad()
    def explain(self, features: Tensor) -> list[memad.LevelExplanation]:
        """Each position's most similar item, the mean squared difference to it, and its top-k read weights."""
        from memad.explanation import explain_nearest

        b, c, h, w = features.shape
        query = F.normalize(features.float(), dim=1)
        q = query.permute(0, 2, 3, 1).reshape(-1, c)
        weights = self.read_weights(q).view(b, h, w, -1)
        assignment = (q @ self.items.t()).argmax(1).view(b, h, w)
        return [explain_nearest(query, self.items, assignment, weights, k=self.k)]

    @torch.no_grad()
    def write(self, query: Tensor, keep: Tensor | None = None) -> None:
        if keep is not None:
            query = query[keep]
        if query.shape[0] == 0:
            return
        q = query.float().permute(0, 2, 3, 1).reshape(-1, query.shape[1])
        self.items = self.update_rule(self.items, q)

    def extra_repr(self) -> str:
        return f"items={self.items.shape[0]}, k={self.k}, init={self.init!r}"
