"""The parts of a detector, and the memory update rule, as abstract interfaces.

A detector runs ``features = encoder(x)``; the memory reads the encoder levels it declares
(``Memory.levels``, the bottleneck by default) and hands the decoder what it read there;
``decoder(skips, bottleneck)`` gets the encoder's maps with the memory's reads put in at
those levels. Memories and decoders report named per-sample *signals* (``distance``...)
that reach :class:`FrameStats` and the scorers, and their own weighted training losses,
which the training loop adds to the task's reconstruction loss. Any class that implements
one of these interfaces and is registered under its kind can be named in a config.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Encoder", "Memory", "MemoryOutput", "LevelExplanation", "Decoder", "DecoderOutput", "Scorer", "UpdateRule",
           "FrameStats", "normalise_per_group", "to_unit_range", "psnr_from_mse"]


class Encoder(nn.Module, abc.ABC):
    """Maps an input ``(B, C_in, H, W)`` to a list of feature maps, shallowest first.

    The last map is the bottleneck; the others reach the decoder as skip connections
    (or the memory, at the levels it reads). ``channels`` and ``reductions`` describe every
    returned map (like timm's ``feature_info``), so memories and decoders are sized from them.
    """

    channels: list[int]
    reductions: list[int]

    @abc.abstractmethod
    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps, shallowest first, bottleneck last."""


@dataclass
class MemoryOutput:
    """What a memory returns for a batch of features.

    Attributes:
        read: what the decoder gets at the memory's level: a tensor, or for a memory with
            ``multilevel = True`` a list with one tensor per entry of ``Memory.levels``.
        loss: the memory's weighted training loss (a scalar; zero if it has none).
        signals: named per-sample values ``{name: (B,)}`` for scoring (MNAD's ``distance``...).
        logs: named unweighted loss terms for progress display.
        query: what :meth:`Memory.write` takes to write this batch into the memory (None for
            memories that are not written outside autograd).
        distance: shorthand for ``signals["distance"]`` (kept in step with it).
    """

    read: Tensor | list[Tensor]
    loss: Tensor
    distance: Tensor | None = None
    logs: dict[str, Tensor] = field(default_factory=dict)
    query: Any = None
    signals: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.distance is not None:
            self.signals.setdefault("distance", self.distance)
        elif "distance" in self.signals:
            self.distance = self.signals["distance"]


@dataclass
class LevelExplanation:
    """How one memory level read a batch: the item each query position is assigned to, and how far it is.

    Shapes are ``(B, *grid)``, ``grid`` the level's ``(h, w)`` (``(t, h, w)`` for 3D maps). Attributes:
        assignment: int64, each position's item: its nearest, or the largest read weight's for attention.
        distance: float32, the mean over channels of the squared difference between the query and its item
            (MNAD's D per position: averaged over positions it is MNAD's ``distance`` signal).
        items: ``(M, D)``, or ``(B, M, D)`` for prototypes made from each input (``per_input``: item ``m`` of
            two inputs is the same slot, not the same vector).
        weights, weight_items: the K largest read weights ``(B, *grid, K)``, descending, and their items
            (memories read by attention; None for one that reads its nearest item only).
        runner_up: the same distance to the nearest other item, or None: ``sqrt(D * runner_up) - sqrt(D *
            distance)`` is the margin in L2 that MNAD's separateness (triplet) loss enlarges.
        level: the encoder level read (None: the network fills it in); cell: input pixels ``(rows, cols)``
            per grid cell when not the level's encoder reduction (a whole-map query: the frame).
    """

    assignment: Tensor
    distance: Tensor
    items: Tensor
    per_input: bool = False
    weights: Tensor | None = None
    weight_items: Tensor | None = None
    runner_up: Tensor | None = None
    level: int | None = None
    cell: tuple[int, int] | None = None

    @property
    def num_items(self) -> int:
        return int(self.items.shape[-2])


class Memory(nn.Module, abc.ABC):
    """Reads (and possibly writes) a memory from encoder features.

    Declarations a memory makes (class or instance attributes):

    - ``levels``: the encoder levels it reads (indices into the encoder's maps, negative
      from the deepest; default ``(-1,)``, the bottleneck). At each, the decoder gets the
      memory's read instead of the encoder's map.
    - ``multilevel``: False (default): ``forward`` gets the one map at ``levels[0]`` and
      returns one read. True: it gets a list of maps in ``levels`` order and returns a list.
    - ``nested_components``: constructor parameters that are themselves components,
      ``{"update": "update_rule"}``; memad validates and builds them from the config.
    - ``writes``: True when :meth:`write` changes state kept outside autograd (items moved
      by an update rule). The training loop then writes each step's ``query``, gathered
      over all processes, and copies the memory's buffers from rank 0 to every rank; at test
      time :meth:`test_write` runs after every forward pass (when ``test.update`` is on).

    A memory with items may also explain its reads (:meth:`explain`, optional): ``memad explain``,
    the detect report and the training loop's memory health use it.
    """

    levels: Sequence[int] = (-1,)
    multilevel: ClassVar[bool] = False
    nested_components: ClassVar[Mapping[str, str]] = {}

    @abc.abstractmethod
    def out_channels(self, in_channels: int) -> int:
        """Channels of the read handed to the decoder for features of ``in_channels`` (at each level)."""

    @abc.abstractmethod
    def forward(self, features: Any) -> MemoryOutput:
        """Read the memory for ``features`` (a map ``(B, C, h, w)``, or a list of maps if ``multilevel``)."""

    def decoder_channels(self, encoder_channels: Sequence[int]) -> list[int]:
        """Channels the decoder receives at every encoder level (``out_channels`` where this memory reads)."""
        out = list(encoder_channels)
        for level in resolve_levels(self.levels, len(out)):
            out[level] = self.out_channels(out[level])
        return out

    @property
    def writes(self) -> bool:
        return False

    def write(self, query: Any, keep: Tensor | None = None) -> None:
        """Write ``query`` (as returned in ``MemoryOutput.query``) into the memory.

        ``keep`` is a boolean ``(B,)`` mask of the samples allowed in. Memories that are
        not written outside autograd ignore this.
        """

    def explain(self, features: Any) -> list[LevelExplanation]:
        """How this memory reads ``features`` (what :meth:`forward` gets): one :class:`LevelExplanation` per
        level, in ``levels`` order. Optional; no state changes, no gradients. The default raises a
        :class:`memad.ConfigError` naming the memory."""
        from .errors import ConfigError
        from .registry import get_registry

        found = [f"{e.name!r} ({e.source})" for e in get_registry() if e.kind == "memory" and e.obj is type(self)]
        who = found[0] if found else f"{type(self).__name__!r} (not registered)"
        raise ConfigError(f"memory {who} does not explain its reads: it has no explain()")

    def test_write(self, out: MemoryOutput, output: Tensor, target: Tensor) -> None:
        """The test-time write protocol, after each forward pass on test frames (no gradients).

        ``output`` and ``target`` are the decoder's image and what it should be, in [-1, 1],
        for a memory whose writes depend on how well the frame was predicted (MNAD's gate).
        The default writes every sample.
        """
        if out.query is not None:
            self.write(out.query)


def resolve_levels(levels: Sequence[int], n: int) -> list[int]:
    """Level indices made non-negative for an encoder of ``n`` maps; each must exist.

    >>> resolve_levels([-1, 1], 4)
    [3, 1]
    """
    out = []
    for level in levels:
        if not -n <= int(level) < n:
            raise ValueError(f"memory level {level}: the encoder returns {n} maps (levels 0..{n - 1}, or -1 "
                             f"for the bottleneck)")
        out.append(int(level) % n)
    if len(set(out)) != len(out):
        raise ValueError(f"memory levels {list(levels)} name one level twice")
    return out


@dataclass
class DecoderOutput:
    """What a decoder may return instead of a bare image tensor.

    Attributes:
        image: ``(B, C_out, H, W)`` in [-1, 1].
        loss: the decoder's own weighted training loss (added to the task's), or None.
        signals: named per-sample values ``{name: (B,)}`` for scoring.
        logs: named unweighted loss terms for progress display.
        extras: named intermediate tensors (a warped image...) for the decoder's own
            :meth:`Decoder.target_losses`, which gets this output back with the target.
    """

    image: Tensor
    loss: Tensor | None = None
    signals: dict[str, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)


class Decoder(nn.Module, abc.ABC):
    """Maps the memory's read (and encoder skips) back to an image ``(B, C_out, H, W)``.

    ``forward`` returns the image, or a :class:`DecoderOutput` carrying a loss and signals too.
    """

    @abc.abstractmethod
    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor | DecoderOutput:
        """``skips`` are the levels before the bottleneck, shallowest first: the encoder's maps,
        or the memory's reads at the levels it reads."""

    def target_signals(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-sample signals that need the target (a residual norm...), computed when scoring:
        ``{name: (B,)}`` from the decoder's image and what it should be, both in [-1, 1].
        The default reports none (``mse`` and ``psnr`` are always computed)."""
        return {}

    def target_losses(self, output: DecoderOutput, target: Tensor) -> dict[str, Tensor]:
        """Weighted training losses that need the target, ``{name: scalar}``, added to the task's
        reconstruction loss (a gradient-difference loss, a loss on an intermediate image kept in
        ``output.extras``...). ``output`` is what :meth:`forward` returned (as a DecoderOutput),
        ``target`` what the image should be, in [-1, 1]. The default adds none."""
        return {}


class UpdateRule(abc.ABC):
    """How a memory's items move towards the queries assigned to them.

    Called outside autograd with unit-norm ``items`` ``(M, D)`` and ``queries``
    ``(K, D)``; returns the new items ``(M, D)``. With no queries (``K = 0``, e.g. every frame of
    a test chunk gated out) a rule returns ``items`` unchanged: nothing was assigned, so nothing
    moves (a rule that renormalises must not, either).
    """

    @abc.abstractmethod
    def __call__(self, items: Tensor, queries: Tensor) -> Tensor: ...

    #: False for rules that never change the items (the memory is frozen).
    changes_items: bool = True


class FrameStats:
    """Per-frame signals gathered at test time, the input of a :class:`Scorer`.

    ``signals`` maps a name to one value per scored frame, in order: ``mse``, ``psnr`` and ``contrast``
    of the output against the target (images in [0, 1]) for every model, plus whatever the
    memory and decoder report (``distance``...). ``video`` gives each frame's video.

    Scorers normalise a signal with :meth:`normalised`: min-max within each video (the
    paper), over all frames, or not at all; when the stats carry a ``calibration`` (ranges
    learned on normal frames, see :mod:`memad.scoring.calibration`) every normalisation uses
    it instead, so a score means the same on every video and on a live stream.

    >>> s = FrameStats(np.array([0, 0, 1, 1]), {"psnr": np.array([30., 20., 25., 25.])})
    >>> s.normalised("psnr").tolist(), s.names
    ([1.0, 0.0, 0.0, 0.0], ['psnr'])
    """

    def __init__(self, video: np.ndarray, signals: Mapping[str, np.ndarray] | None = None, *,
                 psnr: np.ndarray | None = None, mse: np.ndarray | None = None, distance: np.ndarray | None = None,
                 extra: Mapping[str, np.ndarray] | None = None,
                 calibration: Mapping[str, tuple[float, float]] | None = None):
        self.video = np.asarray(video)
        self.signals: dict[str, np.ndarray] = {}
        named = {"psnr": psnr, "mse": mse, "distance": distance}
        for name, values in [*(signals or {}).items(), *named.items(), *(extra or {}).items()]:
            if values is None:
                continue
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
            if len(arr) != len(self.video):
                raise ValueError(f"signal {name!r} has {len(arr)} values for {len(self.video)} frames")
            self.signals[name] = arr
        if "mse" in self.signals and "psnr" not in self.signals:
            self.signals["psnr"] = psnr_from_mse(self.signals["mse"])
        self.calibration = dict(calibration) if calibration is not None else None

    def __len__(self) -> int:
        return len(self.video)

    @property
    def names(self) -> list[str]:
        return sorted(self.signals)

    def __contains__(self, name: str) -> bool:
        return name in self.signals

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.signals[name]
        except KeyError:
            raise KeyError(f"no per-frame signal {name!r}; this model reports {', '.join(self.names)}") from None

    def get(self, name: str) -> np.ndarray | None:
        return self.signals.get(name)

    # The three signals every built-in model has (distance: memories that report one).
    psnr = property(lambda self: self["psnr"])
    mse = property(lambda self: self["mse"])
    distance = property(lambda self: self.signals.get("distance"))

    @property
    def extra(self) -> dict[str, np.ndarray]:
        """Signals other than psnr, mse and distance."""
        return {k: v for k, v in self.signals.items() if k not in ("psnr", "mse", "distance")}

    def normalised(self, name: str, how: str = "video") -> np.ndarray:
        """Signal ``name`` scaled: ``video`` min-max per video, ``global`` over all frames, ``none`` raw.

        With a calibration, ``(v - lo) / (hi - lo)`` with the range learned on normal frames
        whatever ``how`` says (0 and 1 then mark the normal range; values may fall outside).
        """
        values = self[name]
        if self.calibration is not None:
            if name not in self.calibration:
                raise KeyError(f"the calibration has no range for signal {name!r} (it has "
                               f"{', '.join(sorted(self.calibration))}); calibrate again")
            lo, hi = self.calibration[name]
            return (values - lo) / (hi - lo if hi > lo else 1.0)
        if how == "video":
            return normalise_per_group(values, self.video)
        if how == "global":
            return normalise_per_group(values, np.zeros(len(values), dtype=int))
        if how == "none":
            return values
        raise ValueError(f"normalise: expected 'video', 'global' or 'none', got {how!r}")

    def subset(self, index: np.ndarray) -> "FrameStats":
        """The frames at ``index`` (a boolean mask or positions)."""
        return FrameStats(self.video[index], {k: v[index] for k, v in self.signals.items()},
                          calibration=self.calibration)

    def with_calibration(self, calibration: Mapping[str, tuple[float, float]] | None) -> "FrameStats":
        """The same signals, normalised with ``calibration`` (None: per-video or as the scorer says)."""
        return FrameStats(self.video, self.signals, calibration=calibration)


class Scorer(abc.ABC):
    """Turns :class:`FrameStats` into anomaly scores, higher meaning more anomalous.

    A scorer reads signals by name (``stats["psnr"]``) and scales them with
    ``stats.normalised(name, how)``, which makes it work both per video (the paper) and
    with a calibration learned on normal frames, without knowing which.
    """

    #: The signals the scorer reads (checked when scoring, with the model's signals named).
    requires: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def __call__(self, stats: FrameStats) -> np.ndarray: ...

    @property
    def relative(self) -> bool:
        """True when, uncalibrated, a frame's score depends on the other frames scored with it
        (per-video min-max): a threshold on such scores is relative to each call's range."""
        return False

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
