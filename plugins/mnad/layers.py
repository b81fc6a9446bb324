"""The building blocks of the MNAD U-Net, named after the official code's helpers."""

from __future__ import annotations

from torch import nn


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two (conv3x3, BatchNorm, ReLU): the official ``Basic``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


def open_double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """(conv3x3, BN, ReLU, conv3x3) with no final BN/ReLU: the official ``Basic_``.

    Used for the bottleneck, whose output becomes the memory's queries.
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
    )


def up_conv(c_in: int, c_out: int, scale: int = 2) -> nn.Sequential:
    """Transposed conv (x``scale``), BN, ReLU: the official ``Upsample``."""
    if scale == 1:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=scale, padding=1, output_padding=scale - 1),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


def output_head(c_in: int, c_out: int, hidden: int) -> nn.Sequential:
    """conv, BN, ReLU, conv, BN, ReLU, conv, Tanh: the official ``Gen``; outputs in [-1, 1]."""
    return nn.Sequential(
        nn.Conv2d(c_in, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        nn.Conv2d(hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        nn.Conv2d(hidden, c_out, 3, padding=1), nn.Tanh(),
    )
