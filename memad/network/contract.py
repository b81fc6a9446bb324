"""The plugin contract, checked when a detector is built: one dry forward pass on a tiny input.

Each part's outputs are held against what it declared, before any training starts: the
encoder's maps against its ``channels``; the memory's reads against ``levels``, ``multilevel``
and ``out_channels`` (count, channels, spatial size), its ``loss`` a scalar, its ``signals``
``(B,)`` and detached, ``query`` present when it ``writes``, and its state unchanged by
``forward``; the decoder's image against the task's channels and the input's size, its loss
and signals likewise; and the scorer's ``requires`` against the signals the parts produce.
A failure names the component, the distribution it came from, what it declared and what came
back (:class:`ContractError`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .. import config as cfgmod
from ..errors import ConfigError
from ..interfaces import DecoderOutput, MemoryOutput, Scorer
from ..registry import get_registry
from .network import Network

__all__ = ["ContractError", "check_contract", "dry_input_size", "ALWAYS_SIGNALS"]

#: Signals every model reports (computed by scoring from the output and target).
ALWAYS_SIGNALS = ("mse", "psnr", "contrast")


class ContractError(ConfigError):
    """A component's outputs do not match what it declared."""


def _who(net: Network, section: str) -> str:
    name = net.config[section]["name"]
    kind = cfgmod.COMPONENT_SECTIONS[section]
    return f"{section} {name!r} ({get_registry().get(kind, name).source})"


def dry_input_size(net: Network) -> tuple[int, int]:
    """The smallest frame size the check runs at: twice the encoder's largest reduction a side (at
    least 8), never more than the configured size."""
    h, w = cfgmod.image_hw(net.config)
    side = max(8, 2 * max(net.encoder.reductions or [1]))
    return min(h, side), min(w, side)


def _check_signals(who: str, signals: Any, batch: int, where: str) -> list[str]:
    if not isinstance(signals, dict):
        raise ContractError(f"{who}: {where}signals must be a dict {{name: (B,) tensor}}, got "
                            f"{type(signals).__name__}")
    for name, value in signals.items():
        if not isinstance(value, Tensor) or tuple(value.shape) != (batch,):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ContractError(f"{who}: {where}signal {name!r} must be one value per sample, shape ({batch},), got "
                                f"{shape}; reduce per-position values (a mean or max) before returning them")
        if value.requires_grad:
            raise ContractError(f"{who}: {where}signal {name!r} is attached to the autograd graph; return it "
                                f"detached (value.detach())")
    return list(signals)


def _check_scalar(who: str, loss: Any, what: str) -> None:
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ContractError(f"{who}: {what} must be a scalar tensor (zero if none), got {shape}")


def _reads(net: Network, mem: Any, who: str) -> list[Tensor]:
    if not isinstance(mem, MemoryOutput):
        raise ContractError(f"{who}: forward must return a memad.MemoryOutput, got {type(mem).__name__}")
    levels = net.memory_levels
    if net.memory.multilevel:
        if not isinstance(mem.read, (list, tuple)) or not all(isinstance(r, Tensor) for r in mem.read):
            raise ContractError(f"{who}: multilevel = True, so read must be a list of {len(levels)} tensors (one per "
                                f"level {levels}), got {type(mem.read).__name__}")
        if len(mem.read) != len(levels):
            raise ContractError(f"{who}: returned {len(mem.read)} reads for its {len(levels)} levels {levels}")
        return list(mem.read)
    if not isinstance(mem.read, Tensor):
        raise ContractError(f"{who}: read must be a tensor (set multilevel = True to return one per level), got "
                            f"{type(mem.read).__name__}")
    return [mem.read]


def _check_memory(net: Network, feats: Sequence[Tensor], batch: int) -> tuple[MemoryOutput, list[str]]:
    who = _who(net, "memory")
    before = {k: v.detach().clone() for k, v in net.memory.state_dict().items()}
    queries = [feats[i].float() for i in net.memory_levels]
    mem = net.memory(queries if net.memory.multilevel else queries[0])
    reads = _reads(net, mem, who)
    for level, read, query in zip(net.memory_levels, reads, queries):
        want = net.level_channels[level]
        if read.dim() != query.dim() or read.shape[0] != batch or read.shape[1] != want:
            raise ContractError(f"{who}: the read at level {level} has shape {tuple(read.shape)}; out_channels("
                                f"{query.shape[1]}) declares {want} channels, expected ({batch}, {want}, "
                                f"{', '.join(str(s) for s in query.shape[2:])})")
        if read.shape[2:] != query.shape[2:]:
            raise ContractError(f"{who}: the read at level {level} is {tuple(read.shape[2:])} spatially, the features "
                                f"it read {tuple(query.shape[2:])}; a read keeps its level's size")
    _check_scalar(who, mem.loss, "MemoryOutput.loss")
    names = _check_signals(who, mem.signals, batch, "")
    if net.memory.writes and mem.query is None:
        raise ContractError(f"{who}: writes is True but forward returned no query for write() to take")
    for key, value in net.memory.state_dict().items():
        if key in before and not torch.equal(before[key], value):
            raise ContractError(f"{who}: forward changed its state {key!r}; a memory changes state only in write() "
                                f"(called by memad after each training step and by test_write at test time)")
    return mem, names


def check_contract(net: Network, scorer: Scorer) -> None:
    """Run ``net`` once on a tiny input (eval mode, the global random state untouched) and check every
    part's outputs and the scorer's ``requires`` (see the module docstring).

    Parts sized from the frame size (a memory addressing whole maps, a fixed-size backbone) may not
    run on the tiny input: a failure there is checked again at the configured size, and only a
    failure at that size is reported."""
    size = cfgmod.image_hw(net.config)
    tiny = dry_input_size(net)
    try:
        signals = _checked_pass(net, tiny)
    except ContractError:
        if tiny == size:
            raise
        signals = _checked_pass(net, size)
    missing = [s for s in getattr(scorer, "requires", ()) if s not in signals]
    if missing:
        raise ContractError(f"{_who(net, 'scorer')} requires signal(s) {', '.join(map(repr, missing))}, which no part "
                            f"of this model produces (it has {', '.join(sorted(signals))}); pick another scorer or a "
                            f"memory/decoder that reports them")


def _checked_pass(net: Network, hw: tuple[int, int]) -> set[str]:
    data = net.config["data"]
    batch = 2
    was_training = net.training
    net.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            gen = torch.Generator().manual_seed(0)
            device = next((p.device for p in net.parameters()), torch.device("cpu"))
            x = torch.rand(batch, data["channels"] * data["frames"], *hw, generator=gen).to(device) * 2 - 1
            return _dry_pass(net, x, batch)
    finally:
        net.train(was_training)


def _dry_pass(net: Network, x: Tensor, batch: int) -> set[str]:
    who_enc = _who(net, "encoder")
    try:
        feats = net.encoder(x)
    except Exception as exc:
        raise ContractError(f"{who_enc}: failed on a dry input {tuple(x.shape)}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(feats, (list, tuple)) or len(feats) != len(net.encoder.channels):
        got = len(feats) if isinstance(feats, (list, tuple)) else type(feats).__name__
        raise ContractError(f"{who_enc}: returned {got} maps, its channels declare {len(net.encoder.channels)}")
    for i, (f, c) in enumerate(zip(feats, net.encoder.channels)):
        if not isinstance(f, Tensor) or f.shape[1] != c:
            raise ContractError(f"{who_enc}: map {i} has shape {tuple(getattr(f, 'shape', ()))}, channels declares {c}")
    try:
        mem, names = _check_memory(net, feats, batch)
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(f"{_who(net, 'memory')}: failed on the encoder's maps "
                            f"{[tuple(f.shape) for f in feats]}: {type(exc).__name__}: {exc}") from exc
    maps = list(feats)
    for level, read in zip(net.memory_levels, _reads(net, mem, "memory")):
        maps[level] = read
    who_dec = _who(net, "decoder")
    try:
        dec = net.decoder(maps[:-1], maps[-1])
    except Exception as exc:
        raise ContractError(f"{who_dec}: failed on what it was given (level channels {net.level_channels}, shapes "
                            f"{[tuple(m.shape) for m in maps]}): {type(exc).__name__}: {exc}") from exc
    image = dec.image if isinstance(dec, DecoderOutput) else dec
    want = (batch, net.out_channels, *x.shape[2:])
    if not isinstance(image, Tensor) or tuple(image.shape) != want:
        raise ContractError(f"{who_dec}: returned an image of shape {tuple(getattr(image, 'shape', ()))}, expected "
                            f"{want} (out_channels={net.out_channels} at the input's size)")
    if isinstance(dec, DecoderOutput):
        if dec.loss is not None:
            _check_scalar(who_dec, dec.loss, "DecoderOutput.loss")
        names += _check_signals(who_dec, dec.signals, batch, "")
    target = torch.zeros_like(image)
    names += _check_signals(who_dec, net.decoder.target_signals(image.detach(), target), batch, "target_")
    return {*ALWAYS_SIGNALS, *names}
