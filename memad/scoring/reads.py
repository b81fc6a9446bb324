"""The memory's reads during a pass, recorded: which item each query position read, and the input
pixels each position stands for.

:func:`recording` hooks a network so that every forward pass hands its input and the explanation of
its memory read (:meth:`memad.Memory.explain`, on the features the memory got, before any test-time
write) to a callback: scoring, calibration and streaming run unchanged underneath. :func:`crop_cells`
cuts the input pixels a query position stands for.

The receptive-field rule: a query at grid position ``(i, j)`` of a level whose cells are ``(r_h, r_w)``
input pixels (the encoder's reduction at that level) stands for the input rows ``[i r_h, (i + 1) r_h)``
and columns ``[j r_w, (j + 1) r_w)``; the crop is that cell widened by ``context`` cells on every side
(``round(context * r)`` pixels; 0.5 by default, a window of twice the cell), zero (black) outside the
frame. It is the cell the position is computed at, with some context, not the convolutions' full
receptive field (which grows with depth and covers most of a small frame at the bottleneck).
Crops come from the last input frame (for a 3D grid ``(t, h, w)``: the input frame at the middle of
time slot ``t``'s span), the frame the model saw last.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..explanation import complete_levels, explained_part
from ..interfaces import LevelExplanation

__all__ = ["recording", "crop_cells", "crop_window", "input_frames", "slot_frame", "PATCH_MAX"]

#: Crops are scaled down to at most this many pixels a side (a whole-frame query's crop is the frame).
PATCH_MAX = 64

Callback = Callable[[Tensor, list[LevelExplanation]], None]


@contextlib.contextmanager
def recording(network: Any, callback: Callback) -> Iterator[bool]:
    """While open, every forward pass of ``network`` calls ``callback(x, levels)``: the network's input
    ``x`` ``(B, frames*C, H, W)`` and the memory's explanation, one :class:`LevelExplanation` per level
    with ``level`` and ``cell`` filled in. Yields False (and records nothing) when the network's memory
    does not explain its reads (:func:`memad.explanation.explained_part`)."""
    part = explained_part(network)
    if part is None:
        yield False
        return
    state: dict[str, Any] = {}

    def on_input(module: Any, args: tuple) -> None:
        state["x"] = args[0]

    def on_part(module: Any, args: tuple) -> None:
        if "x" in state:
            with torch.no_grad():
                state["levels"] = complete_levels(network, part, part.explain(args[0]))

    def on_output(module: Any, args: tuple, output: Any) -> None:
        x, levels = state.pop("x", None), state.pop("levels", None)
        if x is not None and levels is not None:
            callback(x.detach(), levels)

    hooks = [network.register_forward_pre_hook(on_input), part.register_forward_pre_hook(on_part),
             network.register_forward_hook(on_output)]
    try:
        yield True
    finally:
        for hook in hooks:
            hook.remove()


def crop_window(i: int, j: int, cell: tuple[int, int], context: float = 0.5) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` in input pixels of the crop for grid position ``(i, j)`` (the module
    docstring's rule; it may reach outside the frame).

    >>> crop_window(2, 3, (8, 8))
    (12, 20, 16, 16)
    """
    mh, mw = round(context * cell[0]), round(context * cell[1])
    return i * cell[0] - mh, j * cell[1] - mw, cell[0] + 2 * mh, cell[1] + 2 * mw


def crop_cells(images: Tensor, batch: Tensor, rows: Tensor, cols: Tensor, cell: tuple[int, int],
               context: float = 0.5, max_side: int = PATCH_MAX) -> Tensor:
    """The crops ``(N, C, h, w)`` of ``images`` ``(B, C, H, W)`` at grid positions ``(rows, cols)`` of images
    ``batch`` (``(N,)`` each), by :func:`crop_window`; zero outside the frame, scaled down (area) to at most
    ``max_side`` a side."""
    top, left, h, w = crop_window(0, 0, cell, context)
    pad_t, pad_l = -top, -left
    grid_h = -(-images.shape[-2] // cell[0]) * cell[0]  # the cells may run past a frame not divisible by them
    grid_w = -(-images.shape[-1] // cell[1]) * cell[1]
    padded = F.pad(images, (pad_l, grid_w - images.shape[-1] + pad_l, pad_t, grid_h - images.shape[-2] + pad_t))
    dev = padded.device
    r = rows.to(dev).long()[:, None] * cell[0] + torch.arange(h, device=dev)  # rows in padded coordinates
    c = cols.to(dev).long()[:, None] * cell[1] + torch.arange(w, device=dev)
    patches = padded[batch.to(dev).long()[:, None, None], :, r[:, :, None], c[:, None, :]]  # (N, h, w, C)
    patches = patches.permute(0, 3, 1, 2)
    if max(h, w) > max_side and patches.shape[0]:
        scale = max_side / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        patches = F.interpolate(patches.float(), size=size, mode="area").round().to(images.dtype)
    return patches.contiguous()


def input_frames(x: Tensor, channels: int) -> Tensor:
    """The network input ``(B, F*C, H, W)`` in [-1, 1] as uint8 frames ``(B, F, C, H, W)``."""
    b, fc, h, w = x.shape
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).view(b, fc // channels, channels, h, w)


def slot_frame(slot: Tensor | int, slots: int, frames: int) -> Tensor | int:
    """The input frame at the middle of time slot ``slot`` of ``slots`` covering ``frames`` input frames.

    >>> slot_frame(0, 2, 16), slot_frame(1, 2, 16), slot_frame(0, 1, 4)
    (4, 12, 2)
    """
    return (2 * slot + 1) * frames // (2 * slots)
