"""The no-memory baseline: the bottleneck goes straight to the decoder."""

from __future__ import annotations

from torch import Tensor

from memad import Memory, MemoryOutput


class NoMemory(Memory):
    """Identity "memory": reads are the features themselves, no loss, no distance."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.dim = in_channels

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features: Tensor) -> MemoryOutput:
        return MemoryOutput(read=features, loss=features.new_zeros(()), distance=None)
