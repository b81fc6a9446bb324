"""Helpers for memories that explain their reads (:meth:`memad.Memory.explain`): the nearest-item
explanation most memories share, the largest read weights, and whether a memory explains at all.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .interfaces import LevelExplanation, Memory

#: Most query-item pairs whose distances are held at once (the positions are taken in chunks).
CHUNK = 1 << 22

__all__ = ["explains", "explained_part", "complete_levels", "explain_nearest", "top_weights", "effective_number"]


def explains(memory: Memory) -> bool:
    """Whether ``memory`` overrides :meth:`Memory.explain`."""
    return type(memory).explain is not Memory.explain


def explained_part(network: Any) -> nn.Module | None:
    """The part of a :class:`memad.Network` whose reads are explained: its memory when that explains, else
    the decoder's ``explained_unit`` (a module that gets the features first and has ``explain``: prototypes
    made per input inside a decoder); None when neither."""
    if explains(network.memory):
        return network.memory
    unit = getattr(network.decoder, "explained_unit", None)
    return unit if isinstance(unit, nn.Module) and callable(getattr(unit, "explain", None)) else None


def complete_levels(network: Any, part: nn.Module, levels: list[LevelExplanation]) -> list[LevelExplanation]:
    """``levels`` with ``level`` and ``cell`` filled in: the memory's levels in order, each cell the level's
    encoder reduction (a decoder unit's explanation says its own cell; (1, 1) when it does not)."""
    for i, e in enumerate(levels):
        if part is network.memory:
            if e.level is None:
                e.level = network.memory_levels[i]
            if e.cell is None:
                r = int(network.encoder.reductions[e.level])
                e.cell = (r, r)
        elif e.cell is None:
            e.cell = (1, 1)
    return levels


def effective_number(counts: Tensor) -> float:
    """``exp`` of the entropy of the usage shares ``counts / counts.sum()``: how many items an equally
    shared memory would need for the same entropy (M when every item is read equally, 1 when one is).

    >>> effective_number(torch.tensor([5, 5, 0, 0])), effective_number(torch.tensor([3, 0]))
    (2.0, 1.0)
    """
    p = counts.double() / counts.sum().clamp_min(1)
    p = p[p > 0]
    return round(float(torch.exp(-(p * p.log()).sum())), 6)


def top_weights(weights: Tensor, k: int = 5) -> tuple[Tensor, Tensor]:
    """The ``k`` largest read weights of ``(..., M)`` (all M if fewer), descending, and their items."""
    top = weights.topk(min(k, weights.shape[-1]), dim=-1)
    return top.values, top.indices


@torch.no_grad()
def explain_nearest(query: Tensor, items: Tensor, assignment: Tensor | None = None, weights: Tensor | None = None,
                    per_input: bool = False, k: int = 5) -> LevelExplanation:
    """The explanation of queries ``(B, D, *grid)`` read from ``items`` ``(M, D)`` (``(B, M, D)`` per input).

    ``assignment`` ``(B, *grid)`` defaults to each position's nearest item (squared L2); ``distance`` and
    ``runner_up`` are the mean squared differences to that item and to the nearest other one; ``weights``
    ``(B, *grid, M)``, the read weights of a memory read by attention, keep their ``k`` largest.

    >>> e = explain_nearest(torch.tensor([[[[1.0]], [[0.0]]]]), torch.tensor([[0.0, 1.0], [1.0, 0.2]]))
    >>> e.assignment.tolist(), round(e.distance.item(), 3), round(e.runner_up.item(), 3)
    ([[[1]]], 0.02, 1.0)
    """
    q = query.float().movedim(1, -1)  # (B, *grid, D)
    b, grid, d = q.shape[0], q.shape[1:-1], q.shape[-1]
    flat = q.reshape(b, -1, d)
    bank = items.float() if per_input else items.float().expand(b, -1, -1)
    given = None if assignment is None else assignment.reshape(b, -1).long()
    index, distance, runner = [], [], []
    step = max(1, CHUNK // max(1, b * bank.shape[1]))  # positions per chunk: a bounded (B, chunk, M) block
    for s in range(0, flat.shape[1], step):
        part = flat[:, s:s + step]
        # Squared differences by expansion (no (B, n, M, D) tensor): |q|^2 + |p|^2 - 2 q.p, per channel.
        sq = (part.pow(2).sum(-1, keepdim=True) + bank.pow(2).sum(-1).unsqueeze(1)
              - 2 * part @ bank.transpose(1, 2)).clamp_min(0) / d  # (B, chunk, M)
        idx = sq.argmin(-1) if given is None else given[:, s:s + step]
        index.append(idx)
        distance.append((part - bank.gather(1, idx.unsqueeze(-1).expand(-1, -1, d))).pow(2).mean(-1))
        if bank.shape[1] > 1:
            runner.append(sq.scatter(-1, idx.unsqueeze(-1), float("inf")).amin(-1))
    index_t = torch.cat(index, 1)
    runner_up = torch.cat(runner, 1).view(b, *grid) if runner else None
    top = top_weights(weights.float(), k) if weights is not None else (None, None)
    return LevelExplanation(index_t.view(b, *grid), torch.cat(distance, 1).view(b, *grid), items.detach(), per_input,
                            top[0], top[1], runner_up)
