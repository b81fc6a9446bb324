"""What scoring runs: "a model that scores a step", as typed protocols, and the one step function.

:class:`StepModel` is what :func:`memad.scoring.stream.stream` and ``memad detect`` take: the
PyTorch detector (:class:`memad.Detector`) and exported ONNX/TorchScript models
(:class:`memad.scoring.export.ExportedModel`) both satisfy it, each bringing its own engine
through :meth:`StepModel.make_step`. :class:`TorchModel` is a StepModel with a PyTorch network,
what offline scoring, calibration and export need.

:func:`step_signals` is the single definition of one scoring step's outputs (the signals, the
error map, the memory's test-time write): offline scoring, streaming and the exported step
module all call it, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributed, runtime
from ..config import image_hw
from ..frames import to_float
from ..interfaces import Scorer, to_unit_range
from ..network import Network

__all__ = ["StepModel", "TorchModel", "ClipStep", "TorchStep", "TorchStepModel", "step_signals", "writes_at_test",
           "anchor_memory", "trained_state", "default_map_hw", "local_contrast"]

#: ``contrast``'s regions: the error averaged over a grid of this many cells a side, then over windows of
#: ``CONTRAST_WINDOW`` cells a side (a quarter of the frame), at every cell.
CONTRAST_GRID, CONTRAST_WINDOW = 16, 4


def local_contrast(err: Tensor, eps: float = 1e-8) -> Tensor:
    """Per sample of the squared error ``err`` ``(B, C, H, W)``: ``log`` of the worst region's mean error over
    the frame's mean error. A gain on the whole frame's error leaves it unchanged and an even error gives 0;
    an error concentrated in one region (an object that moves unlike the rest) raises it. An error added
    evenly (camera noise) lowers it, so it is not invariant to everything that differs between cameras.

    >>> err = torch.zeros(2, 1, 64, 64); err[0] += 0.1; err[1, :, :16, :16] = 0.1
    >>> [round(v, 2) for v in local_contrast(err).tolist()]  # log 1 (uniform), log 16 (in a sixteenth)
    [0.0, 2.77]
    """
    frame = err.mean(1, keepdim=True)
    h, w = frame.shape[-2:]
    grid = F.adaptive_avg_pool2d(frame, (min(CONTRAST_GRID, h), min(CONTRAST_GRID, w)))
    window = (max(1, grid.shape[-2] * CONTRAST_WINDOW // CONTRAST_GRID),
              max(1, grid.shape[-1] * CONTRAST_WINDOW // CONTRAST_GRID))
    worst = F.avg_pool2d(grid, window, stride=1).flatten(1).amax(1)
    return torch.log(worst + eps) - torch.log(frame.flatten(1).mean(1) + eps)


@runtime_checkable
class ClipStep(Protocol):
    """One engine's per-frame step: a uint8 clip ``(1, L, C, H, W)`` in, ``{signal: (1,)}`` (and ``map``) out,
    with the memory's test-time write carried on; :meth:`close` restores the initial memory."""

    def __call__(self, clip: Tensor) -> Mapping[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class StepModel(Protocol):
    """A model that scores a clip step (a PyTorch detector or an exported model)."""

    config: dict[str, Any]
    scorer: Scorer
    calibration_: dict[str, Any] | None
    threshold_: float | None

    @property
    def clip_length(self) -> int: ...

    @property
    def score_offset(self) -> int: ...

    def make_step(self, maps: bool, device: torch.device | None = None) -> ClipStep: ...


@runtime_checkable
class TorchModel(StepModel, Protocol):
    """A :class:`StepModel` whose engine is a PyTorch :class:`~memad.network.Network`."""

    network: Network


def anchor_memory(memory: nn.Module, trained: Mapping[str, Tensor], rate: float) -> None:
    """Pull each floating state tensor of ``memory`` a share ``rate`` of the way back to its value in
    ``trained`` (``test.anchor``), out of place, so an exported graph carries it as data flow.

    >>> m = nn.Module(); m.register_buffer("items", torch.ones(2))
    >>> anchor_memory(m, {"items": torch.zeros(2)}, 0.25); m.items.tolist()
    [0.75, 0.75]
    """
    for name, value in list(memory.named_buffers()):
        if name in trained and value.is_floating_point():
            owner, _, leaf = name.rpartition(".")
            module = memory.get_submodule(owner) if owner else memory
            module._buffers[leaf] = value + rate * (trained[name].to(value) - value)


def trained_state(network: Network) -> dict[str, Tensor]:
    """A copy of the memory's state as it is now (what :func:`anchor_memory` pulls back to)."""
    return {k: v.detach().clone() for k, v in network.memory.state_dict().items()}


@torch.no_grad()
def step_signals(network: Network, clips: Tensor, *, amp: bool = False, channels_last: bool = False,
                 map_hw: tuple[int, int] | None = None, write: bool = True,
                 trained: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Float clips ``(B, L, C, H, W)`` in [-1, 1] -> per-sample signals (``mse``, ``contrast``, the parts' signals, the
    decoder's target signals) and, with ``map_hw``, the per-pixel squared error pooled to that size;
    with ``write``, the memory's test-time write protocol runs after the pass, then the memory is pulled
    ``test.anchor`` of the way back to ``trained`` (when given)."""
    x, y = network.split_clip(clips)
    with runtime.autocast(x.device, amp):
        out = network(runtime.to_model_layout(x, channels_last))
    pred = out.output.float()
    err = (to_unit_range(pred) - to_unit_range(y)).pow(2)
    result = {"mse": err.flatten(1).mean(1), "contrast": local_contrast(err),
              **{k: v.float() for k, v in out.signals.items()},
              **{k: v.float() for k, v in network.decoder.target_signals(pred, y).items()}}
    if map_hw is not None:
        result["map"] = F.adaptive_avg_pool2d(err.mean(1, keepdim=True), map_hw)[:, 0]
    if write:
        network.memory.test_write(out.memory, pred, y)
        rate = float(network.config["test"].get("anchor", 0.0))
        if trained is not None and rate > 0:
            anchor_memory(network.memory, trained, rate)
    return result


def writes_at_test(network: Network) -> bool:
    """Whether scoring writes the memory (``test.update`` and a memory that writes)."""
    return bool(network.config["test"]["update"] and network.memory.writes)


class TorchStep:
    """The per-frame step of a network in PyTorch (one uint8 clip at a time), in the scoring precision
    and layout of ``test.amp`` / ``test.channels_last``; :meth:`close` restores the memory."""

    def __init__(self, network: Network, device: torch.device, map_hw: tuple[int, int] | None):
        tc = network.config["test"]
        self.network, self.device, self.map_hw = network, device, map_hw
        self.was_training = network.training
        network.eval()
        self.amp = runtime.scoring_amp(tc, device)
        self.channels_last = runtime.scoring_channels_last(tc, device)
        runtime.prepare_model(network, network.config["train"], device,
                              compiled=(network.encoder, network.decoder), channels_last=self.channels_last)
        self.write = writes_at_test(network)
        self.trained = trained_state(network)

    def __call__(self, clip: Tensor) -> dict[str, Tensor]:
        out = step_signals(self.network, to_float(clip.to(self.device)), amp=self.amp,
                           channels_last=self.channels_last, map_hw=self.map_hw, write=self.write,
                           trained=self.trained)
        if "map" in out:
            out["map"] = out["map"].half()  # as offline scoring keeps them
        return out

    def close(self) -> None:
        self.network.memory.load_state_dict(self.trained)
        self.network.train(self.was_training)


@dataclass
class TorchStepModel:
    """A :class:`TorchModel` from its pieces: a network, its scorer, calibration and threshold."""

    network: Network
    scorer: Scorer
    calibration_: dict[str, Any] | None = None
    threshold_: float | None = None

    @property
    def config(self) -> dict[str, Any]:
        return self.network.config

    @property
    def clip_length(self) -> int:
        return self.network.clip_length

    @property
    def score_offset(self) -> int:
        return self.network.score_offset

    def make_step(self, maps: bool, device: torch.device | None = None) -> TorchStep:
        return TorchStep(self.network, device or distributed.setup(self.config["train"]["device"]),
                         default_map_hw(self.config) if maps else None)


def default_map_hw(config: Mapping[str, Any]) -> tuple[int, int]:
    """The error-map size kept per frame: the frame scaled to at most ``data.pixel_eval_size`` a side."""
    h, w = image_hw(config)
    limit = config["data"]["pixel_eval_size"]
    scale = min(1.0, limit / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))
