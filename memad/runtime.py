"""Where and how a model runs: the device, bf16 autocast, channels-last layout and torch.compile.

The layer below training and scoring (and the distributed helpers): it knows torch, not
detectors' parts, so every loop that runs a model gets the same switches from one place.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["pick_device", "amp_enabled", "autocast", "uses_channels_last", "to_model_layout", "prepare_model",
           "synchronize", "native_cpu_bf16", "full_precision", "scoring_amp", "scoring_channels_last"]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_enabled(train_cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether ``train.amp`` turns on bf16 autocast on ``device`` ("auto": on CUDA only)."""
    setting = train_cfg.get("amp", "auto")
    return device.type == "cuda" if setting == "auto" else bool(setting)


@functools.cache  # the CPU does not change while the process runs
def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX-BF16 or AVX512-BF16), as oneDNN's
    bf16 convolutions need to be fast; elsewhere PyTorch emulates them, several times slower than fp32."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if any(c is not None for c in checks):
        return any(bool(c()) for c in checks if c is not None)
    try:  # an older torch without the probes: the kernel's CPU flags (Linux)
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def scoring_amp(test_cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether ``test.amp`` turns on bf16 autocast while scoring ("auto": on CUDA, and on a CPU with
    native bf16, :func:`native_cpu_bf16`)."""
    setting = test_cfg.get("amp", "auto")
    if setting != "auto":
        return bool(setting)
    return device.type == "cuda" or (device.type == "cpu" and native_cpu_bf16())


def scoring_channels_last(test_cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether ``test.channels_last`` scores in channels-last layout ("auto": on CUDA and CPU)."""
    setting = test_cfg.get("channels_last", "auto")
    return device.type in ("cuda", "cpu") if setting == "auto" else bool(setting)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` (CUDA or CPU) when enabled; a no-op otherwise."""
    if enabled and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """A region where autocast is off (on ``device``), for computations that need fp32 inside an
    autocast region."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def uses_channels_last(train_cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether ``train.channels_last`` is on for ``device`` ("auto": CUDA only)."""
    setting = train_cfg.get("channels_last", False)
    return device.type == "cuda" if setting == "auto" else bool(setting)


def to_model_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d batch in the layout the model's weights use."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def prepare_model(model: nn.Module, train_cfg: Mapping[str, Any], device: torch.device,
                  compiled: tuple[nn.Module, ...] = (), channels_last: bool | None = None) -> bool:
    """Move ``model`` to ``device`` and apply ``train.channels_last`` (or ``channels_last`` when given:
    scoring's own setting) and ``train.compile``.

    Idempotent. ``compiled`` are the submodules to compile (``nn.Module.compile``, which
    keeps the parameter names, so checkpoints stay loadable without compile). Returns
    whether batches should be converted to channels-last.
    """
    if channels_last is None:
        channels_last = uses_channels_last(train_cfg, device)
    model.to(device)
    if channels_last:
        # 4-d tensors only, as model.to(memory_format=...) does, which refuses a Conv3d's 5-d weights
        for t in itertools.chain(model.parameters(), model.buffers()):
            if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last):
                t.data = t.data.contiguous(memory_format=torch.channels_last)
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
