"""Memory health during training: how many of the memory's items the training queries actually read.

Each training step's memory read is explained (:meth:`memad.Memory.explain` on the features the memory
got, caught by a forward pre-hook: no extra forward pass, one similarity product per step) and the
assignments are counted on the device; nothing is read back until the epoch ends. Per epoch the record
gains ``effective_items`` (``exp`` of the entropy of the usage shares: how many equally used items would
give the same entropy) and ``dead_items`` (the share of items no query position was assigned to), with
an ``_l<level>`` suffix per level for a memory reading several. A warning says when most items are dead.
Memories that do not explain their reads are skipped.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from .. import distributed
from ..explanation import complete_levels, effective_number, explained_part

__all__ = ["MemoryHealth", "DEAD_WARNING"]

#: Warn when more than this share of a level's items were read by no query in an epoch.
DEAD_WARNING = 0.5


class MemoryHealth:
    """Counts the items the memory's training reads are assigned to; :meth:`epoch` returns the figures."""

    def __init__(self, network: Any):
        self.network = network
        self.part = explained_part(network)
        self.counts: list[Tensor] = []
        self.levels: list[int | None] = []
        self.warned = False
        self._hook = self.part.register_forward_pre_hook(self._count) if self.part is not None else None

    def _count(self, module: Any, args: tuple) -> None:
        if not module.training:
            return  # scoring and calibration passes are not training reads
        with torch.no_grad():
            levels = complete_levels(self.network, self.part, self.part.explain(args[0]))
        if not self.counts:
            self.counts = [torch.zeros(e.num_items, dtype=torch.float64, device=e.assignment.device) for e in levels]
            self.levels = [e.level for e in levels]
        for counts, e in zip(self.counts, levels):
            counts += torch.bincount(e.assignment.flatten(), minlength=counts.numel()).to(counts.dtype)

    def epoch(self, epoch: int) -> dict[str, float]:
        """This epoch's ``effective_items`` and ``dead_items`` (per level), and the counts reset."""
        out: dict[str, float] = {}
        several = len(self.counts) > 1
        for level, counts in zip(self.levels, self.counts):
            total = distributed.all_reduce_mean(counts) * distributed.world_size()  # the counts of every rank
            suffix = f"_l{level}" if several else ""
            dead = float((total == 0).double().mean())
            out[f"effective_items{suffix}"] = effective_number(total)
            out[f"dead_items{suffix}"] = round(dead, 6)
            if dead > DEAD_WARNING and not self.warned and distributed.is_main():
                self.warned = True
                where = f" at level {level}" if several else ""
                warnings.warn(f"memory{where}: {round(dead * total.numel())} of {total.numel()} items were read by no "
                              f"training query in epoch {epoch} (effective number of items "
                              f"{out[f'effective_items{suffix}']:.1f}); the memory is mostly dead: fewer items, "
                              f"another initialisation or a stronger separateness loss may use it better",
                              RuntimeWarning, stacklevel=2)
            counts.zero_()
        return out

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
