"""Where and how a model runs: the device, bf16 autocast, channels-last layout and torch.compile.

The layer below training and scoring (and the distributed helpers): it knows torch, not
detectors' parts, so every loop that runs a model gets the same switches from one place.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["pick_device", "amp_enabled", "autocast", "uses_channels_last", "to_model_layout", "prepare_model",
           "synchronize"]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_enabled(train_cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether ``train.amp`` turns on bf16 autocast on ``device`` ("auto": on CUDA only)."""
    setting = train_cfg.get("amp", "auto")
    return device.type == "cuda" if setting == "auto" else bool(setting)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` (CUDA or CPU) when enabled; a no-op otherwise."""
    if enabled and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(train_cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether ``train.channels_last`` is on for ``device`` ("auto": CUDA only)."""
    setting = train_cfg.get("channels_last", False)
    return device.type == "cuda" if setting == "auto" else bool(setting)


def to_model_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d batch in the layout the model's weights use."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def prepare_model(model: nn.Module, train_cfg: Mapping[str, Any], device: torch.device,
                  compiled: tuple[nn.Module, ...] = ()) -> bool:
    """Move ``model`` to ``device`` and apply ``train.channels_last`` and ``train.compile``.

    Idempotent. ``compiled`` are the submodules to compile (``nn.Module.compile``, which
    keeps the parameter names, so checkpoints stay loadable without compile). Returns
    whether batches should be converted to channels-last.
    """
    channels_last = uses_channels_last(train_cfg, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    mode = train_cfg.get("compile", False)
    if mode:
        for part in compiled:
            if getattr(part, "_compiled_call_impl", None) is None:
                part.compile(mode=None if mode is True else mode, dynamic=False)
    return channels_last


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (before reading a clock); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
