"""DMAD's information compression: a vector-quantising codebook at the bottleneck.

Every bottleneck position is replaced by its nearest codebook item (squared Euclidean distance). The
items are parameters learned by gradient through the codebook loss ``|sg[z] - e|^2`` (each item is pulled
towards the mean of the latents assigned to it), and the encoder is held near its items by the
commitment loss ``beta |z - sg[e]|^2``; gradients pass the quantisation straight through to the encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memad import LevelExplanation, Memory, MemoryOutput
from memad.explanation import explain_nearest


def nearest_items(latents: Tensor, items: Tensor) -> Tensor:
    """Index of the nearest item (squared L2) for every row of ``latents`` ``(N, D)``; ``items`` ``(K, D)``.

    >>> nearest_items(torch.tensor([[0.9, 0.0], [0.0, -2.0]]), torch.tensor([[1.0, 0.0], [0.0, -1.0]])).tolist()
    [0, 1]
    """
    dist = latents.pow(2).sum(1, keepdim=True) + items.pow(2).sum(1) - 2 * latents @ items.t()
    return dist.argmin(dim=1)


class Codebook(Memory):
    """Vector-quantising codebook (DMAD's compression module): each position reads its nearest item.

    The decoder gets the quantised map (straight-through gradients) followed by the unquantised latents
    (``append_query``), from which the official decoder takes a detached skip at the bottleneck. Loss:
    ``weight * (codebook + commitment * commitment_loss)``, both mean squared errors between the latents
    and their items. Signal ``distance``: per sample, the mean squared distance of its latents to their items.

    Args:
        in_channels: item dimension (the encoder's bottleneck channels), filled in by memad.
        items: number of codebook items (the official model's default 50; its Ped2 script passes 200).
        commitment: beta, the commitment loss's weight (0.25).
        weight: gamma_1, the weight of the whole codebook term (1).
        append_query: hand the decoder ``[quantised, latents]`` (twice the channels) instead of the quantised map.
    """

    def __init__(self, in_channels: int, items: int = 50, commitment: float = 0.25, weight: float = 1.0,
                 append_query: bool = True):
        super().__init__()
        if items < 1:
            raise ValueError(f"memory.items: expected at least 1, got {items}")
        if commitment < 0 or weight < 0:
            raise ValueError(f"memory.commitment / memory.weight: expected values >= 0, got {commitment}, {weight}")
        self.commitment, self.weight, self.append_query = commitment, weight, append_query
        # nn.Embedding's weight, initialised as the official VQ layer: uniform in [-1/K, 1/K].
        self.items = nn.Parameter(torch.empty(items, in_channels).uniform_(-1.0 / items, 1.0 / items))

    def out_channels(self, in_channels: int) -> int:
        return 2 * in_channels if self.append_query else in_channels

    def forward(self, features: Tensor) -> MemoryOutput:
        b, c, h, w = features.shape
        latents = features.permute(0, 2, 3, 1).reshape(-1, c)
        index = nearest_items(latents.detach(), self.items.detach())
        quantised = self.items[index]
        codebook = F.mse_loss(quantised, latents.detach())
        commitment = F.mse_loss(latents, quantised.detach())
        distance = (latents.detach() - quantised.detach()).pow(2).reshape(b, -1).mean(1)
        straight = latents + (quantised - latents).detach()
        read = straight.reshape(b, h, w, c).permute(0, 3, 1, 2)
        if self.append_query:
            read = torch.cat([read, features], dim=1)
        return MemoryOutput(read=read, loss=self.weight * (codebook + self.commitment * commitment),
                            distance=distance,
                            logs={"codebook": codebook.detach(), "commitment": commitment.detach()})

    @torch.no_grad()
    def explain(self, features: Tensor) -> list[LevelExplanation]:
        """Each position's codebook item (the one it is quantised to) and the mean squared difference to it."""
        return [explain_nearest(features, self.items, self.assign(features))]

    @torch.no_grad()
    def assign(self, features: Tensor) -> Tensor:
        """The item each position of ``features`` ``(B, C, h, w)`` reads: ``(B, h, w)`` indices."""
        b, c, h, w = features.shape
        return nearest_items(features.permute(0, 2, 3, 1).reshape(-1, c).float(), self.items.float()).view(b, h, w)


__all__ = ["Codebook", "nearest_items"]
