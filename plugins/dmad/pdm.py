"""The pyramid deformation module (PDM): two displacement fields estimated from the input frames, a
coarse one (estimated at a quarter of the resolution, then upsampled) and a fine one, that warp the
prototype reconstruction onto the actual frame one after the other; their regularisers (magnitude and
smoothness); and the per-frame errors the official code scores with.

Fields are ``(B, H, W, 2)`` displacements in ``grid_sample``'s normalised coordinates (x then y, the
image spanning [-1, 1] with ``align_corners=True``): a sample reads the source at ``base + offset``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import CoordConv2d, ResBlock


def base_grid(height: int, width: int, *, device=None, dtype=None) -> Tensor:
    """``(1, H, W, 2)`` identity sampling grid: x = linspace(-1, 1, W) along columns, y along rows."""
    ys = torch.linspace(-1, 1, height, device=device, dtype=dtype)
    xs = torch.linspace(-1, 1, width, device=device, dtype=dtype)
    return torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1)[None]


def warp(image: Tensor, offset: Tensor) -> Tensor:
    """``image`` ``(B, C, H, W)`` resampled at ``base + offset`` (clamped to the image), bilinear, zeros outside.

    With ``offset[..., 0] = 2 / (W - 1)`` (one pixel to the right) output column ``j`` shows input column
    ``j + 1``; the last column, which would read past the edge, reads the edge (the grid is clamped).
    """
    _, _, h, w = image.shape
    grid = (base_grid(h, w, device=image.device, dtype=offset.dtype) + offset).clamp(-1, 1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


class OffsetNet(nn.Module):
    """Estimates the coarse and fine displacement fields from the input frames.

    Shared trunk: two coordinate convolutions (``channels`` wide, BN, ReLU), then a residual block and BN
    whose output is concatenated with the trunk's. Coarse head: conv, BN, ReLU, two stride-2 convolutions
    (a quarter of the resolution), tanh, scaled to at most ``max_offsets[0]`` pixels, bilinearly upsampled.
    Fine head: conv, BN, ReLU, conv, tanh, scaled to at most ``max_offsets[1]`` pixels.
    """

    def __init__(self, in_channels: int, channels: int = 64, max_offsets: Sequence[float] = (2.0, 3.0),
                 cells: int = 32):
        super().__init__()
        c = channels
        self.trunk = nn.Sequential(CoordConv2d(in_channels, c, cells=cells), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                   CoordConv2d(c, c, cells=cells), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(ResBlock(c), nn.BatchNorm2d(c))
        self.fine = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, 2, 3, padding=1), nn.Tanh())
        self.coarse = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                    nn.Conv2d(c, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                    nn.Conv2d(c, 2, 3, stride=2, padding=1), nn.Tanh())
        self.max_offsets = (float(max_offsets[0]), float(max_offsets[1]))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(coarse, fine)`` fields, each ``(B, H, W, 2)``."""
        _, _, h, w = x.shape
        t = self.trunk(x)
        t = torch.cat([self.residual(t), t], dim=1)
        out = []
        for field, limit in ((self.coarse(t), self.max_offsets[0]), (self.fine(t), self.max_offsets[1])):
            # ``limit`` pixels, as the official code's 2 * limit / size (per axis here).
            scale = field.new_tensor([2 * limit / w, 2 * limit / h]).view(1, 2, 1, 1)
            field = F.interpolate(field * scale, (h, w), mode="bilinear", align_corners=True)
            out.append(field.permute(0, 2, 3, 1))
        return out[0], out[1]


def magnitude_loss(offset: Tensor) -> Tensor:
    """Mean Euclidean length of the displacements of a field ``(B, H, W, 2)``."""
    return offset.pow(2).sum(-1).clamp_min(1e-12).sqrt().mean()


def smoothness_loss(offset: Tensor, kernel: int) -> Tensor:
    """Mean of ``|Lx s| + |Ly s|``, ``s`` the sum of the field's two components, ``Lx`` a position minus the
    mean of the ``kernel - 1`` others of its row window (zero padding), ``Ly`` the same along columns.

    (The official filter is one kernel repeated over the two components of a 2-in, 1-out convolution,
    which sums them before the absolute value: so does this.)
    """
    if kernel < 2:
        raise ValueError(f"smoothness kernel: expected at least 2, got {kernel}")
    s = offset.sum(-1)[:, None]  # (B, 1, H, W)
    weight = torch.full((kernel,), -1.0 / (kernel - 1), device=s.device, dtype=s.dtype)
    weight[kernel // 2] = 1.0
    pad = kernel // 2
    dx = F.conv2d(F.pad(s, (pad, pad, 0, 0)), weight.view(1, 1, 1, kernel))
    dy = F.conv2d(F.pad(s, (0, 0, pad, pad)), weight.view(1, 1, kernel, 1))
    return (dx.abs() + dy.abs()).mean()


def gradient_difference(output: Tensor, target: Tensor) -> Tensor:
    """``(B, 1, H, W)``: ``|dx(T - O)| + |dy(T - O)|`` of the channel sums, ``d`` the difference with the
    previous column (row), zero before the first (the official gradient loss's map)."""
    d = (target - output).sum(1, keepdim=True)
    dx = d - F.pad(d, (1, 0, 0, 0))[..., :, :-1]
    dy = d - F.pad(d, (0, 0, 1, 0))[..., :-1, :]
    return dx.abs() + dy.abs()


def window_max(values: Tensor, window: Sequence[int]) -> Tensor:
    """Per sample, the largest mean of ``values`` ``(B, C, H, W)`` (or ``(B, H, W)``) over a ``window``
    (rows, columns) box, summed over channels, the map zero-padded by a window on every side."""
    if values.dim() == 3:
        values = values[:, None]
    kh, kw = int(window[0]), int(window[1])
    padded = F.pad(values.abs().sum(1, keepdim=True), (kw, kw, kh, kh))
    return F.avg_pool2d(padded, (kh, kw), stride=1).flatten(1).amax(1)


def scaled_window(window: Sequence[int], image_hw: tuple[int, int], reference: int) -> tuple[int, int]:
    """A window given in pixels of a ``reference``-pixel frame, scaled to ``image_hw`` (at least 1 each).

    >>> scaled_window([7, 18], (64, 64), 256)
    (2, 5)
    """
    return (max(1, int(window[0] * image_hw[0] / reference + 0.5)),
            max(1, int(window[1] * image_hw[1] / reference + 0.5)))


__all__ = ["base_grid", "warp", "OffsetNet", "magnitude_loss", "smoothness_loss", "gradient_difference",
           "window_max", "scaled_window"]
