"""MNAD's prototype memory: M unit-norm items read by every query, moved by an update
rule outside autograd, with the compactness and separateness losses (paper eq. 1-5, 8-12),
and its test-time write protocol: the gate of eq. 6-7."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from memad import LevelExplanation, Memory, MemoryOutput, UpdateRule, build_component
from memad.explanation import explain_nearest
from memad.interfaces import to_unit_range


def regular_score(output: Tensor, target: Tensor) -> Tensor:
    """Eq. 6-7 per sample: ``sum(W e) / sum(W)``, ``e`` the squared error in [0, 1], ``W = 1 - exp(-e)``."""
    e = (to_unit_range(output.float()) - to_unit_range(target.float())).pow(2).flatten(1)
    w = 1 - torch.exp(-e)
    return (w * e).sum(1) / w.sum(1).clamp_min(1e-12)


class PrototypeMemory(Memory):
    """The paper's memory of ``items`` prototypes of the query dimension.

    Read (eq. 1-2): per query, a softmax over the items of cosine similarity weights a
    sum of the items; the decoder gets ``concat[query, read]`` (2x the channels).
    Losses: ``compactness`` x mean squared distance of each query to its nearest item,
    ``separateness`` x triplet loss (nearest item positive, second nearest negative).

    Args:
        in_channels: query dimension (the encoder's last width), filled in by memad.
        items: number of memory items M (10 in the paper).
        compactness: weight of the compactness loss (lambda_c).
        separateness: weight of the separateness loss (lambda_s).
        margin: the triplet margin alpha.
        update: the update rule (a nested component: memad builds it from its section, a registered
            ``update_rule`` name or ``{name: ..., ...}``, and passes it built).
        detach_weights: detach the read weights, as the official code does.
        gate: the test-time gate (eq. 6-7): a test frame's queries are written only when its
            weighted regular score is below this (official code: 0.01 pred, 0.015 recon);
            null writes every frame.
    """

    nested_components = {"update": "update_rule"}

    def __init__(
        self,
        in_channels: int,
        items: int = 10,
        compactness: float = 0.1,
        separateness: float = 0.1,
        margin: float = 1.0,
        update: UpdateRule | str | dict = "mnad",
        detach_weights: bool = True,
        gate: float | None = None,
    ):
        super().__init__()
        if items < 2:
            raise ValueError(f"memory.items: expected at least 2 (the separateness loss needs two), got {items}")
        self.dim = in_channels
        self.compactness = compactness
        self.separateness = separateness
        self.margin = margin
        self.detach_weights = detach_weights
        if gate is not None and gate < 0:
            raise ValueError(f"memory.gate: expected a score >= 0 or null, got {gate!r}")
        self.gate = gate
        self.update_rule: UpdateRule = build_component("update_rule", update)  # already built when memad builds
        # Items are state, not parameters: they are saved with the weights but never see a gradient.
        self.register_buffer("items", F.normalize(torch.rand(items, in_channels), dim=1))

    def out_channels(self, in_channels: int) -> int:
        return 2 * in_channels

    @property
    def writes(self) -> bool:
        return self.update_rule.changes_items

    @staticmethod
    def _flat(query: Tensor) -> Tensor:
        b, c, h, w = query.shape
        return query.permute(0, 2, 3, 1).reshape(b * h * w, c)

    def forward(self, features: Tensor) -> MemoryOutput:
        b, c, h, w = features.shape
        query = F.normalize(features.float(), dim=1)
        q = self._flat(query)
        items = self.items
        sim = q @ items.t()  # (K, M) cosine similarities
        weights = torch.softmax(sim, dim=1)
        if self.detach_weights:
            weights = weights.detach()
        read = (weights @ items).view(b, h, w, c).permute(0, 3, 1, 2)

        nearest = sim.topk(2, dim=1).indices
        pos, neg = items[nearest[:, 0]], items[nearest[:, 1]]
        sq = (q - pos).pow(2)
        compact = sq.mean()
        separate = F.triplet_margin_loss(q, pos, neg, margin=self.margin)
        distance = sq.reshape(b, h * w * c).mean(dim=1)
        loss = self.compactness * compact + self.separateness * separate
        # The items move after the step, outside autograd: the training loop writes `query`
        # (gathered over all processes) and the test loop calls test_write.
        return MemoryOutput(
            read=torch.cat([query, read], dim=1).to(features.dtype),
            loss=loss,
            distance=distance.detach(),
            logs={"compact": compact.detach(), "separate": separate.detach()},
            query=query.detach(),
        )

    @torch.no_grad()
    def explain(self, features: Tensor) -> list[LevelExplanation]:
        """Each position's nearest item (largest cosine similarity: the softmax's largest read weight), the
        mean squared difference to it (the ``distance`` signal per position) and the read weights."""
        b, c, h, w = features.shape
        query = F.normalize(features.float(), dim=1)
        sim = self._flat(query) @ self.items.t()
        weights = torch.softmax(sim, dim=1).view(b, h, w, -1)
        return [explain_nearest(query, self.items, sim.argmax(1).view(b, h, w), weights)]

    @torch.no_grad()
    def write(self, query: Tensor, keep: Tensor | None = None) -> None:
        if keep is not None and keep.numel() == 1 and query.shape[0] == 1:
            # One frame (the sequential test): update, then keep the old items where the gate
            # says no. A select on the device, where indexing by the mask would wait for the GPU.
            updated = self.update_rule(self.items, self._flat(query.float()))
            self.items = torch.where(keep.reshape(()), updated, self.items)
            return
        if keep is not None:
            query = query[keep]  # several frames: one host sync per chunk, to size the kept queries
        if query.shape[0] == 0:
            return
        self.items = self.update_rule(self.items, self._flat(query.float()))

    def test_write(self, out: MemoryOutput, output: Tensor, target: Tensor) -> None:
        """Eq. 6-7: write the frames whose weighted regular score is below ``gate`` (all without a gate)."""
        keep = None if self.gate is None else regular_score(output, target) < self.gate
        self.write(out.query, keep)

    def extra_repr(self) -> str:
        return f"items={self.items.shape[0]}, dim={self.dim}, update={type(self.update_rule).__name__}"
