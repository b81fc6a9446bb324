"""The MNAD U-Net: an encoder whose bottleneck gives the queries, and a decoder sized
from the encoder's reported channels (with or without skip connections)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from memad import Decoder, Encoder

from .layers import double_conv, open_double_conv, output_head, up_conv


class UNetEncoder(Encoder):
    """Four stages of ``widths`` channels, max-pooled between them (x8 reduction).

    Args:
        in_channels: input channels (frame channels x input frames), filled in by memad.
        widths: channels per stage; the last is the query dimension (512 in the paper).
        vestigial_bn: keep the official code's unused ``BatchNorm2d(widths[-1])``, frozen,
            so parameter counts and weights match the official checkpoints exactly.
    """

    def __init__(self, in_channels: int, widths: list[int] = [64, 128, 256, 512], vestigial_bn: bool = True):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"encoder.widths: expected at least 2 stages, got {widths}")
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList(double_conv(chans[i], chans[i + 1]) for i in range(len(widths) - 1))
        self.bottleneck = open_double_conv(widths[-2], widths[-1])
        self.pool = nn.MaxPool2d(2, 2)
        if vestigial_bn:
            self.vestigial_bn = nn.BatchNorm2d(widths[-1]).requires_grad_(False)
        self.channels = list(widths)
        self.reductions = [2**i for i in range(len(widths))]

    def forward(self, x: Tensor) -> list[Tensor]:
        return pooled_stages(x, self.stages, self.pool, self.bottleneck)


def pooled_stages(x: Tensor, stages: Sequence[nn.Module], pool: nn.Module, bottleneck: nn.Module) -> list[Tensor]:
    """The U-Net encoder's pass: each stage's output (kept for its skip), pooled into the next stage; the
    bottleneck on the last one pooled. Shallowest first."""
    feats = []
    for stage in stages:
        x = stage(x)
        feats.append(x)
        x = pool(x)
    feats.append(bottleneck(x))
    return feats


class UNetDecoder(Decoder):
    """Mirror of the encoder, sized from ``encoder_channels``/``encoder_reductions``.

    With ``skip`` (the prediction model) each upsampling halves the channels and the
    encoder map of that scale is concatenated; without (the reconstruction model) the
    upsampling keeps the channels. When the shallowest encoder map is already reduced
    (timm backbones), a last upsampling brings the output to full resolution.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_reductions: Sequence[int],
        memory_channels: int,
        out_channels: int,
        skip: bool = True,
    ):
        super().__init__()
        chans, reds = list(encoder_channels), list(encoder_reductions)
        self.skip = skip
        self.entry = double_conv(memory_channels, chans[-1])
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        c = chans[-1]
        for i in range(len(chans) - 2, -1, -1):
            scale = reds[i + 1] // reds[i]
            up_out = chans[i] if skip else c
            self.ups.append(up_conv(c, up_out, scale))
            block_in = up_out + chans[i] if skip else up_out
            if i > 0:
                self.blocks.append(double_conv(block_in, chans[i]))
                c = chans[i]
            else:
                c = block_in
        self.final_up = up_conv(c, c, reds[0]) if reds[0] > 1 else nn.Identity()
        self.head = output_head(c, out_channels, chans[0])

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor:
        x = self.entry(bottleneck)
        n = len(self.ups)
        for j, up in enumerate(self.ups):
            x = up(x)
            if self.skip:
                x = torch.cat([skips[n - 1 - j], x], dim=1)
            if j < len(self.blocks):
                x = self.blocks[j](x)
        return self.head(self.final_up(x))
