"""MNAD's prototype memory: M unit-norm items read by every query, moved by an update
rule outside autograd, with the compactness and separateness losses (paper eq. 1-5, 8-12)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from memad import Memory, MemoryOutput, UpdateRule, distributed
from memad.registry import get_registry


def resolve_update_rule(update: UpdateRule | str | dict) -> UpdateRule:
    """An update rule from an instance, a registered name or ``{name: ..., **params}``."""
    if isinstance(update, UpdateRule):
        return update
    spec = {"name": update} if isinstance(update, str) else dict(update)
    name = spec.pop("name")
    return get_registry().get("update_rule", name).obj(**spec)


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
        update: the update rule: a registered ``update_rule`` name or section.
        detach_weights: detach the read weights, as the official code does.
    """

    def __init__(
        self,
        in_channels: int,
        items: int = 10,
        compactness: float = 0.1,
        separateness: float = 0.1,
        margin: float = 1.0,
        update: str | dict = "mnad",
        detach_weights: bool = True,
    ):
        super().__init__()
        if items < 2:
            raise ValueError(f"memory.items: expected at least 2 (the separateness loss needs two), got {items}")
        self.dim = in_channels
        self.compactness = compactness
        self.separateness = separateness
        self.margin = margin
        self.detach_weights = detach_weights
        self.update_rule = resolve_update_rule(update)
        # Items are state, not parameters: they are saved with the weights but never see a gradient.
        self.register_buffer("items", F.normalize(torch.rand(items, in_channels), dim=1))

    def out_channels(self, in_channels: int) -> int:
        return 2 * in_channels

    @property
    def writes_at_test_time(self) -> bool:
        return self.update_rule.changes_items

    @staticmethod
    def _flat(query: Tensor) -> Tensor:
        b, c, h, w = query.shape
        return query.permute(0, 2, 3, 1).reshape(b * h * w, c)

    def forward(self, features: Tensor, update: bool = False) -> MemoryOutput:
        b, c, h, w = features.shape
        # The memory runs in float32 even under autocast: its softmaxes and the update
        # compare unit vectors whose differences are small.
        with torch.autocast(features.device.type, enabled=False):
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

            if update and self.training:
                # Items move outside autograd, so DDP does not synchronise them: every rank applies
                # the rule to the queries of all ranks (the global batch), then takes rank 0's result
                # so that GPU kernels that sum in varying order cannot make the ranks drift apart.
                self.write(distributed.all_gather_cat(query.detach()))
                self.items = distributed.broadcast(self.items)
        return MemoryOutput(
            read=torch.cat([query, read], dim=1).to(features.dtype),
            loss=loss,
            distance=distance.detach(),
            logs={"compact": compact.detach(), "separate": separate.detach()},
            query=query.detach(),
        )

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

    def extra_repr(self) -> str:
        return f"items={self.items.shape[0]}, dim={self.dim}, update={type(self.update_rule).__name__}"
