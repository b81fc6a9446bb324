"""The four parts of a detector, and the memory update rule, as abstract interfaces.

A detector runs ``features = encoder(x)``; ``out = memory(features[-1])``;
``y = decoder(features[:-1], out.read)``; the scorer turns per-frame statistics into
anomaly scores. Any class that implements one of these interfaces and is registered
under its kind can be named in a config.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Encoder", "Memory", "MemoryOutput", "Decoder", "Scorer", "UpdateRule", "FrameStats"]


class Encoder(nn.Module, abc.ABC):
    """Maps an input ``(B, C_in, H, W)`` to a list of feature maps, shallowest first.

    The last map is the bottleneck that the memory reads; the others are available to
    the decoder as skip connections. ``channels`` and ``reductions`` describe every
    returned map (like timm's ``feature_info``), so decoders are sized from them.
    """

    channels: list[int]
    reductions: list[int]

    @abc.abstractmethod
    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps, shallowest first, bottleneck last."""


@dataclass
class MemoryOutput:
    """What a memory returns for a batch of bottleneck features.

    Attributes:
        read: the tensor handed to the decoder, ``(B, out_channels, h, w)``.
        loss: the memory's weighted training loss (a scalar; zero if it has none).
        distance: per-sample feature distance to the memory ``(B,)`` (MNAD's D), or None.
        logs: named unweighted loss terms for progress display.
        query: the (possibly normalised) queries the memory used, for a later update.
    """

    read: Tensor
    loss: Tensor
    distance: Tensor | None = None
    logs: dict[str, Tensor] = field(default_factory=dict)
    query: Tensor | None = None


class Memory(nn.Module, abc.ABC):
    """Reads (and possibly writes) a memory from bottleneck features.

    ``forward(features, update=...)`` returns a :class:`MemoryOutput`. ``update`` says
    whether this call may write to the memory (training steps do; evaluation decides
    per frame through the test-time gate and calls :meth:`write` itself).
    """

    @abc.abstractmethod
    def out_channels(self, in_channels: int) -> int:
        """Channels of ``MemoryOutput.read`` for bottleneck features of ``in_channels``."""

    @abc.abstractmethod
    def forward(self, features: Tensor, update: bool = False) -> MemoryOutput:
        """Read the memory for ``features`` ``(B, C, h, w)``."""

    def write(self, query: Tensor, keep: Tensor | None = None) -> None:
        """Write ``query`` (as returned in ``MemoryOutput.query``) into the memory.

        ``keep`` is a boolean ``(B,)`` mask of the samples allowed in (the test-time
        gate). Memories whose items are not written outside training ignore this.
        """

    @property
    def writes_at_test_time(self) -> bool:
        """True when :meth:`write` changes the memory (evaluation then runs the gate)."""
        return False


class Decoder(nn.Module, abc.ABC):
    """Maps the memory's read (and encoder skips) back to an image ``(B, C_out, H, W)``."""

    @abc.abstractmethod
    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor:
        """``skips`` are the encoder's maps except the last, shallowest first."""


class UpdateRule(abc.ABC):
    """How a memory's items move towards the queries assigned to them.

    Called outside autograd with unit-norm ``items`` ``(M, D)`` and ``queries``
    ``(K, D)``; returns the new items ``(M, D)``.
    """

    @abc.abstractmethod
    def __call__(self, items: Tensor, queries: Tensor) -> Tensor: ...

    #: False for rules that never change the items (the memory is frozen).
    changes_items: bool = True


@dataclass
class FrameStats:
    """Per-frame statistics gathered at test time, the input of a :class:`Scorer`.

    Every array has one entry per scored frame, in order; ``video`` gives the index
    of the video each frame belongs to (used for per-video normalisation).
    """

    video: np.ndarray
    psnr: np.ndarray
    mse: np.ndarray
    distance: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.video)


class Scorer(abc.ABC):
    """Turns :class:`FrameStats` into anomaly scores, higher meaning more anomalous."""

    @abc.abstractmethod
    def __call__(self, stats: FrameStats) -> np.ndarray: ...

    def config(self) -> Mapping[str, object]:
        """The scorer's parameters (for display and checkpoints)."""
        return {}


def normalise_per_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Min-max normalise ``values`` within each group (a constant group maps to 0).

    >>> normalise_per_group(np.array([1., 3., 2., 2.]), np.array([0, 0, 1, 1]))
    array([0., 1., 0., 0.])
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(values)
    for g in np.unique(groups):
        sel = groups == g
        v = values[sel]
        span = v.max() - v.min()
        out[sel] = (v - v.min()) / span if span > 0 else 0.0
    return out


def to_unit_range(x: Tensor) -> Tensor:
    """Map images from [-1, 1] to [0, 1]."""
    return (x + 1) * 0.5


def psnr_from_mse(mse: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """PSNR in dB of images in [0, 1]: ``10 log10(1 / mse)``."""
    if isinstance(mse, Tensor):
        return 10 * torch.log10(1 / mse.clamp_min(1e-10))
    return 10 * np.log10(1 / np.maximum(mse, 1e-10))
