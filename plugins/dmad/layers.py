"""Building blocks of the DMAD-PDM networks: plain and coordinate-aware convolution stacks, the
transposed-convolution upsampling, the output and mask heads, and the offset net's residual block.

The coordinate convolution appends four channels to its input before convolving: for rows and for
columns, the cell of a ``cells``-cell grid a position lies in and its position relative to that cell
(both scaled to [-1, 1]), which is what the official code's ``AddCoords2d`` computes for maps whose side
is a multiple of 32; here any side works (a side under ``cells`` gets one cell per position).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def coordinate_channels(height: int, width: int, cells: int = 32, *, device=None, dtype=None) -> Tensor:
    """``(4, height, width)``: row position within its cell, row cell, column position within its cell,
    column cell, each mapped to [-1, 1] as ``2 v - 1``.

    For a side ``n`` and position ``i``: ``cell = floor(i * c / n) / (c - 1)`` with ``c = min(cells, n)``,
    ``within = i / (n - 1) - cell``.

    >>> coordinate_channels(2, 2, cells=2)[:, :, 0].tolist()  # rows of the first column
    [[-1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]]
    """

    def axis(n: int) -> tuple[Tensor, Tensor]:
        c = max(1, min(cells, n))
        i = torch.arange(n, device=device, dtype=torch.float64)
        cell = torch.floor(i * c / n) / max(c - 1, 1)
        within = i / max(n - 1, 1) - cell
        return 2 * within - 1, 2 * cell - 1

    row_within, row_cell = axis(height)
    col_within, col_cell = axis(width)
    out = torch.stack([row_within[:, None].expand(height, width), row_cell[:, None].expand(height, width),
                       col_within[None, :].expand(height, width), col_cell[None, :].expand(height, width)])
    return out.to(dtype or torch.get_default_dtype())


class CoordConv2d(nn.Module):
    """A convolution (no bias) of the input with :func:`coordinate_channels` appended."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 cells: int = 32):
        super().__init__()
        self.cells = cells
        self.conv = nn.Conv2d(c_in + 4, c_out, kernel_size, stride=stride, padding=padding, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        coords = coordinate_channels(h, w, self.cells, device=x.device, dtype=x.dtype)
        coords = coords[None].expand(b, -1, -1, -1)
        if x.is_contiguous(memory_format=torch.channels_last):
            coords = coords.contiguous(memory_format=torch.channels_last)
        return self.conv(torch.cat([x, coords], dim=1))


def basic(c_in: int, c_out: int, coords: bool = False, cells: int = 32) -> nn.Sequential:
    """Two (conv3x3 without bias, BatchNorm, ReLU); with ``coords`` the convolutions are coordinate-aware
    (the official decoder's ``Basic``), without them plain (the encoder's)."""

    def conv(a: int, b: int) -> nn.Module:
        return CoordConv2d(a, b, cells=cells) if coords else nn.Conv2d(a, b, 3, padding=1, bias=False)

    return nn.Sequential(conv(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         conv(c_out, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def open_basic(c_in: int, c_out: int) -> nn.Sequential:
    """conv3x3 (no bias), BN, ReLU, conv3x3 (with bias): the bottleneck, whose output is quantised."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1))


def upsample(c_in: int, c_out: int) -> nn.Sequential:
    """Transposed conv3x3, stride 2 (no bias), BN, ReLU: doubles height and width."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def head(c_in: int, c_out: int, hidden: int, last: nn.Module) -> nn.Sequential:
    """Two (conv3x3 without bias, BN, ReLU), then conv3x3 with bias and ``last`` (Tanh for the image,
    Sigmoid for the mask)."""
    return nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
                         nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 3, padding=1, bias=False),
                         nn.BatchNorm2d(hidden), nn.ReLU(inplace=True), nn.Conv2d(hidden, c_out, 3, padding=1), last)


class ResBlock(nn.Module):
    """``x + conv1x1(ReLU(BN(conv3x3(ReLU(x)))))``: the offset net's residual block."""

    def __init__(self, channels: int):
        super().__init__()
        self.convs = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                   nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.convs(x)


__all__ = ["coordinate_channels", "CoordConv2d", "basic", "open_basic", "upsample", "head", "ResBlock"]
