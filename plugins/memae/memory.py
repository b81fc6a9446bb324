"""MemAE's memory (Gong et al., ICCV 2019): items learned by gradient, a sparse
attention over them through hard shrinkage, and an entropy loss on that attention."""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memad import Memory, MemoryOutput
from memad.interfaces import LevelExplanation


def hard_shrink_relu(weights: Tensor, threshold: float, eps: float = 1e-12) -> Tensor:
    """``relu(w - t) * w / (|w - t| + eps)``: keeps weights above ``t`` (nearly unchanged), zeroes the rest.

    A continuous form of hard shrinkage through which gradients flow (MemAE eq. 7).

    >>> hard_shrink_relu(torch.tensor([0.5, 0.001]), 0.0025)
    tensor([0.5000, 0.0000])
    """
    return F.relu(weights - threshold) * weights / ((weights - threshold).abs() + eps)


def address(query: Tensor, items: Tensor, how: Literal["dot", "cosine"] = "dot") -> Tensor:
    """Addressing weights ``softmax(q p^T)`` of queries ``(K, D)`` over items ``(M, D)``, ``(K, M)``."""
    if how == "cosine":
        logits = F.normalize(query, dim=1) @ F.normalize(items, dim=1).t()
    else:
        logits = query @ items.t()
    return torch.softmax(logits, dim=1)


def sparse_address(query: Tensor, items: Tensor, threshold: float, how: Literal["dot", "cosine"] = "dot",
                   eps: float = 1e-12) -> Tensor:
    """MemAE's read weights: addressing, hard shrinkage, then L1 renormalisation per query."""
    weights = address(query, items, how)
    if threshold > 0:
        weights = F.normalize(hard_shrink_relu(weights, threshold, eps), p=1, dim=1)
    return weights


def attention_entropy(weights: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean over queries of ``-sum_i w_i log w_i`` (zero weights contribute nothing)."""
    return -(weights * torch.log(weights + eps)).sum(dim=1).mean()


class MemAEMemory(Memory):
    """MemAE's memory: a sparse (hard-shrunk) softmax over items learned by gradient, read per position.

    Each position's feature vector is replaced by ``w_hat @ items``. The items are an
    ``nn.Parameter`` trained with the rest of the network; nothing is written outside the
    gradient step. Features may be ``(B, C, h, w)`` or ``(B, C, t, h, w)`` (3D models):
    each position's C-vector is one query.

    Args:
        in_channels: feature dimension (the encoder's last width), filled in by memad.
        items: number of memory items N (2000 for MemAE's video model).
        shrink: hard-shrinkage threshold lambda (0.0025 in the official code; the paper
            suggests 1/N to 3/N); 0 disables shrinkage.
        entropy: weight of the entropy loss of the shrunk weights (0.0002).
        addressing: ``"dot"`` (the official code) or ``"cosine"`` (the paper's text).
    """

    def __init__(
        self,
        in_channels: int,
        items: int = 2000,
        shrink: float = 0.0025,
        entropy: float = 0.0002,
        addressing: Literal["dot", "cosine"] = "dot",
    ):
        super().__init__()
        if items < 1:
            raise ValueError(f"memory.items: expected at least 1, got {items}")
        if shrink < 0 or shrink >= 1:
            raise ValueError(f"memory.shrink: expected a threshold in [0, 1), got {shrink!r}")
        if entropy < 0:
            raise ValueError(f"memory.entropy: expected a weight >= 0, got {entropy!r}")
        if addressing not in ("dot", "cosine"):
            raise ValueError(f"memory.addressing: expected 'dot' or 'cosine', got {addressing!r}")
        self.dim = in_channels
        self.shrink = shrink
        self.entropy = entropy
        self.addressing = addressing
        bound = 1.0 / math.sqrt(in_channels)  # the official code's uniform initialisation
        self.items = nn.Parameter(torch.empty(items, in_channels).uniform_(-bound, bound))
        self._checked_dead = False

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features: Tensor) -> MemoryOutput:
        if features.dim() < 3 or features.shape[1] != self.dim:
            raise ValueError(f"MemAE memory: expected features (B, {self.dim}, ...spatial), "
                             f"got shape {tuple(features.shape)}")
        # Softmax over 2000 items and a threshold of 0.0025 need float32 even under autocast.
        with torch.autocast(features.device.type, enabled=False):
            channels_last = features.float().movedim(1, -1)
            query = channels_last.reshape(-1, self.dim)
            weights = sparse_address(query, self.items, self.shrink, self.addressing)
            read = (weights @ self.items).view(channels_last.shape).movedim(-1, 1)
            ent = attention_entropy(weights)
            if self.training and not self._checked_dead:
                self._warn_if_dead(weights)
        return MemoryOutput(
            read=read.to(features.dtype),
            loss=self.entropy * ent,
            distance=None,
            logs={"entropy": ent.detach()},
            query=None,
        )

    @torch.no_grad()
    def explain(self, features: Tensor) -> list[LevelExplanation]:
        """Each position's item of largest read weight (shrinkage keeps the addressing's order), the mean
        squared difference to it and the largest read weights; 2D ``(B, C, h, w)`` or 3D ``(B, C, t, h, w)``."""
        from memad.explanation import explain_nearest

        channels_last = features.float().movedim(1, -1)
        weights = address(channels_last.reshape(-1, self.dim), self.items, self.addressing)
        assignment = weights.argmax(1).view(channels_last.shape[:-1])
        if self.shrink > 0:  # the read's weights, as sparse_address makes them
            weights = F.normalize(hard_shrink_relu(weights, self.shrink), p=1, dim=1)
        return [explain_nearest(features, self.items, assignment, weights.view(*channels_last.shape[:-1], -1))]

    def _warn_if_dead(self, weights: Tensor) -> None:
        # Weights start near 1/N: with shrink above that, every weight can be cut, the read is
        # zero and no gradient reaches the items or the encoder. Checked once (it costs a sync).
        self._checked_dead = True
        if self.shrink > 0 and not bool((weights > 0).any()):
            n = self.items.shape[0]
            warnings.warn(f"MemAE memory: every addressing weight is below memory.shrink={self.shrink} (weights start "
                          f"near 1/items = {1 / n:.2g}), so the read is zero and nothing reaches the items or the "
                          f"encoder; lower memory.shrink or memory.items", RuntimeWarning, stacklevel=3)

    def extra_repr(self) -> str:
        return (f"items={self.items.shape[0]}, dim={self.dim}, shrink={self.shrink}, entropy={self.entropy}, "
                f"addressing={self.addressing!r}")
