"""A prototype memory at two encoder levels: the decoder gets each level's read in place of
the encoder's map there, and the shallower level's distance to its items is a signal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

import memad
from memad.interfaces import resolve_levels


def flatten_positions(x: Tensor) -> Tensor:
    """``(B, C, h, w)`` -> ``(B*h*w, C)``: one row per position, sample-major."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b * h * w, c)


@dataclass
class LevelRead:
    """What one level's items give for one level's features."""

    read: Tensor      # (B, C, h, w): what the decoder gets at this level
    query: Tensor     # (B, C, h, w): the unit-norm queries, detached (what write takes)
    distance: Tensor  # (B,): mean squared distance of each sample's queries to their nearest item
    compact: Tensor   # scalar: the same over the batch, with gradient
    separate: Tensor  # scalar: triplet loss, nearest item positive, second nearest negative


def read_level(features: Tensor, items: Tensor, temperature: float, margin: float) -> LevelRead:
    """Every position of ``features`` reads a softmax (cosine similarity / temperature) over ``items`` (M, C)."""
    b, c, h, w = features.shape
    query = F.normalize(features.float(), dim=1)
    q = flatten_positions(query)
    sim = q @ items.t()
    # Not detached, unlike MNAD's read weights: the read replaces the encoder's map, so the
    # decoder's loss reaches the encoder stages up to this level only through these weights.
    weights = torch.softmax(sim / temperature, dim=1)
    read = (weights @ items).view(b, h, w, c).permute(0, 3, 1, 2)
    nearest = sim.topk(2, dim=1).indices
    pos, neg = items[nearest[:, 0]], items[nearest[:, 1]]
    sq = (q - pos).pow(2)
    return LevelRead(read=read, query=query.detach(), distance=sq.reshape(b, -1).mean(dim=1).detach(),
                     compact=sq.mean(), separate=F.triplet_margin_loss(q, pos, neg, margin=margin))


class TwoLevelMemory(memad.Memory):
    """Prototype items at two encoder levels, each level's map replaced by its read; reports ``skip_distance``.

    At each level every position's unit-norm query reads a softmax (cosine similarity /
    ``temperature``) over that level's unit-norm items, and the decoder gets the read in place
    of the encoder's map, with the same channels: a U-Net decoder with skips takes it
    unchanged, and what reaches the decoder through the skip connection is made of normal
    prototypes too, not only what passes the bottleneck.

    Signals: ``distance``, the deeper level's mean squared distance of the queries to their
    nearest item (MNAD's D, so the ``mnad`` scorer works), and ``skip_distance``, the same at
    the shallower level. Losses: MNAD's compactness and separateness at both levels.

    Args:
        encoder_channels: the encoder's channels per level, filled in by memad.
        levels: the two encoder levels read (indices into the encoder's maps, negative from the
            bottleneck); ``[-2, -1]`` is the bottleneck and the level above it.
        items: items per level (at least 2: the separateness loss needs a second nearest).
        temperature: softmax temperature of the read; lower reads fewer items.
        compactness: weight of the compactness loss (summed over both levels).
        separateness: weight of the separateness loss (summed over both levels).
        margin: the triplet margin.
        update: the update rule moving the items (``mnad``, ``ema``, ``none``...) or its section.

    Items move outside autograd, by the update rule: ``writes`` is True (unless the rule is
    ``none``), so memad's training loop hands each step's queries of both levels (gathered from
    every process) to :meth:`write` and copies the items from rank 0 to every rank; at test
    time (``test.update``) every scored frame is written.
    """

    multilevel = True
    nested_components = {"update": "update_rule"}

    def __init__(
        self,
        encoder_channels: Sequence[int],
        levels: list[int] = [-2, -1],
        items: int = 10,
        temperature: float = 0.1,
        compactness: float = 0.1,
        separateness: float = 0.1,
        margin: float = 1.0,
        update: str | dict | memad.UpdateRule = "mnad",
    ):
        super().__init__()
        if not isinstance(levels, (list, tuple)) or len(levels) != 2:
            raise ValueError(f"memory.levels: expected two encoder levels, got {levels!r}")
        try:
            shallow, deep = sorted(resolve_levels(levels, len(encoder_channels)))
        except ValueError as exc:
            raise ValueError(f"memory.levels: {exc}") from None
        if items < 2:
            raise ValueError(f"memory.items: expected at least 2 (the separateness loss needs two), got {items}")
        if temperature <= 0:
            raise ValueError(f"memory.temperature: expected a value > 0, got {temperature!r}")
        # Shallowest first: the detector hands forward the maps in this order.
        self.levels = (shallow, deep)
        self.temperature, self.margin = temperature, margin
        self.compactness, self.separateness = compactness, separateness
        # memad passes the rule built (nested_components); a section only when constructed directly.
        self.update_rule = memad.build_component("update_rule", update)
        # Buffers, not parameters: saved with the weights, moved only by write().
        self.register_buffer("skip_items", F.normalize(torch.rand(items, encoder_channels[shallow]), dim=1))
        self.register_buffer("items", F.normalize(torch.rand(items, encoder_channels[deep]), dim=1))

    def out_channels(self, in_channels: int) -> int:
        return in_channels  # the read replaces the map: skips keep the widths the decoder expects

    @property
    def writes(self) -> bool:
        return self.update_rule.changes_items

    def forward(self, features: list[Tensor]) -> memad.MemoryOutput:
        if len(features) != 2:
            raise ValueError(f"TwoLevelMemory reads 2 levels {self.levels}, got {len(features)} maps")
        shallow, deep = features
        skip = read_level(shallow, self.skip_items, self.temperature, self.margin)
        main = read_level(deep, self.items, self.temperature, self.margin)
        loss = (self.compactness * (skip.compact + main.compact)
                + self.separateness * (skip.separate + main.separate))
        return memad.MemoryOutput(
            read=[skip.read.to(shallow.dtype), main.read.to(deep.dtype)],
            loss=loss,
            signals={"distance": main.distance, "skip_distance": skip.distance},
            logs={"compact": main.compact.detach(), "separate": main.separate.detach(),
                  "skip_compact": skip.compact.detach(), "skip_separate": skip.separate.detach()},
            query=[skip.query, main.query],
        )

    @torch.no_grad()
    def write(self, query: list[Tensor], keep: Tensor | None = None) -> None:
        """Move each level's items towards that level's queries (only the samples ``keep`` allows)."""
        for name, q in zip(("skip_items", "items"), query):
            if keep is not None:
                q = q[keep]
            if q.shape[0] == 0:
                return
            setattr(self, name, self.update_rule(getattr(self, name), flatten_positions(q.float())))

    def extra_repr(self) -> str:
        return (f"levels={self.levels}, items={self.items.shape[0]}, temperature={self.temperature}, "
                f"update={type(self.update_rule).__name__}")
