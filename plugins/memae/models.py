"""MemAE's convolutional autoencoders: the 3D-conv video model and a 2D one for images.

memad feeds encoders ``(B, frames*C, H, W)`` (frames stacked on channels). The 3D
encoder unstacks them into a clip ``(B, C, T, H, W)``; its decoder stacks the
reconstructed clip back, so the detector compares it with the input frames.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from memad import Decoder, Encoder


def _stage(conv: type[nn.Module], norm: type[nn.Module], c_in: int, c_out: int, stride, transposed: bool = False,
           output_padding=0) -> nn.Sequential:
    """conv 3 (or transposed conv), BatchNorm, LeakyReLU(0.2): MemAE's building block."""
    extra = {"output_padding": output_padding} if transposed else {}
    return nn.Sequential(conv(c_in, c_out, 3, stride=stride, padding=1, **extra), norm(c_out),
                         nn.LeakyReLU(0.2, inplace=True))


def _check_widths(widths: Sequence[int]) -> None:
    if len(widths) < 1 or any(int(w) < 1 for w in widths):
        raise ValueError(f"encoder.widths: expected one or more positive channel counts, got {list(widths)}")


def _check_divisible(what: str, size: int, factor: int, field: str) -> None:
    if size % factor:
        raise ValueError(f"{field}={size}: the {what} is halved {factor.bit_length() - 1} times and mirrored back, "
                         f"so it must be a multiple of {factor}")


class MemAE3DEncoder(Encoder):
    """Conv3d stages (kernel 3): the first strided (1, 2, 2), the others (2, 2, 2).

    With the paper's widths ``[96, 128, 256, 256]`` a 16x256x256 clip becomes
    2x16x16 positions of 256-d features (the memory's queries).

    Args:
        in_channels: frames x channels, filled in by memad.
        frames: clip length T (``data.frames``), filled in by memad.
        image_size: ``(H, W)``, filled in by memad; checked against the strides.
        widths: channels per stage.
    """

    def __init__(self, in_channels: int, frames: int, image_size: Sequence[int] = (256, 256),
                 widths: list[int] = [96, 128, 256, 256]):
        super().__init__()
        _check_widths(widths)
        if in_channels % frames:
            raise ValueError(f"memae3d encoder: {in_channels} input channels do not split into {frames} frames")
        self.frames, self.frame_channels = frames, in_channels // frames
        depth = len(widths)
        _check_divisible("clip length", frames, 2 ** (depth - 1), "data.frames")
        for side in image_size:
            _check_divisible("frame side", int(side), 2**depth, "data.image_size")
        chans = [self.frame_channels, *widths]
        self.stages = nn.ModuleList(
            _stage(nn.Conv3d, nn.BatchNorm3d, chans[i], chans[i + 1], (1, 2, 2) if i == 0 else (2, 2, 2))
            for i in range(depth))
        self.channels = list(widths)
        self.reductions = [2 ** (i + 1) for i in range(depth)]

    def forward(self, x: Tensor) -> list[Tensor]:
        b, _, h, w = x.shape
        x = x.view(b, self.frames, self.frame_channels, h, w).transpose(1, 2)  # (B, C, T, H, W)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class MemAE3DDecoder(Decoder):
    """Mirror of :class:`MemAE3DEncoder` with ConvTranspose3d; outputs the clip stacked on channels.

    The last layer has no normalisation and ends in tanh (frames are in [-1, 1]).
    """

    def __init__(self, encoder_channels: Sequence[int], memory_channels: int, out_channels: int, frames: int,
                 task: str = "reconstruction"):
        super().__init__()
        if task != "reconstruction":
            raise ValueError("memae3d decoder reconstructs its input clip: set task: reconstruction")
        if out_channels % frames:
            raise ValueError(f"memae3d decoder: {out_channels} output channels do not split into {frames} frames")
        self.frames, self.frame_channels = frames, out_channels // frames
        chans = list(encoder_channels)
        ins = [memory_channels, *chans[::-1][1:]]
        outs = chans[::-1][1:]
        self.stages = nn.ModuleList(
            _stage(nn.ConvTranspose3d, nn.BatchNorm3d, c_in, c_out, 2, transposed=True, output_padding=1)
            for c_in, c_out in zip(ins, outs))
        last = outs[-1] if outs else memory_channels
        self.head = nn.Sequential(
            nn.ConvTranspose3d(last, self.frame_channels, 3, stride=(1, 2, 2), padding=1, output_padding=(0, 1, 1)),
            nn.Tanh())

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor:
        x = bottleneck
        for stage in self.stages:
            x = stage(x)
        x = self.head(x)  # (B, C, T, H, W)
        b, c, t, h, w = x.shape
        return x.transpose(1, 2).reshape(b, t * c, h, w)

    def target_signals(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``clip_error``: the official MemAE score of a clip, the mean over its pixels (every frame,
        every position) of the residual's L2 norm across channels."""
        b, _, h, w = output.shape
        residual = (output.float() - target.float()).view(b, self.frames, self.frame_channels, h, w)
        return {"clip_error": residual.pow(2).sum(2).sqrt().flatten(1).mean(1)}


class MemAE2DEncoder(Encoder):
    """Conv2d stages (kernel 3, stride 2), BatchNorm, LeakyReLU(0.2): MemAE's image model.

    Stacked input frames are plain input channels.
    """

    def __init__(self, in_channels: int, image_size: Sequence[int] = (256, 256),
                 widths: list[int] = [64, 128, 256, 256]):
        super().__init__()
        _check_widths(widths)
        for side in image_size:
            _check_divisible("frame side", int(side), 2 ** len(widths), "data.image_size")
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList(_stage(nn.Conv2d, nn.BatchNorm2d, chans[i], chans[i + 1], 2)
                                    for i in range(len(widths)))
        self.channels = list(widths)
        self.reductions = [2 ** (i + 1) for i in range(len(widths))]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class MemAE2DDecoder(Decoder):
    """Mirror of :class:`MemAE2DEncoder` with ConvTranspose2d, ending in tanh."""

    def __init__(self, encoder_channels: Sequence[int], memory_channels: int, out_channels: int):
        super().__init__()
        chans = list(encoder_channels)
        ins = [memory_channels, *chans[::-1][1:]]
        outs = chans[::-1][1:]
        self.stages = nn.ModuleList(
            _stage(nn.ConvTranspose2d, nn.BatchNorm2d, c_in, c_out, 2, transposed=True, output_padding=1)
            for c_in, c_out in zip(ins, outs))
        last = outs[-1] if outs else memory_channels
        self.head = nn.Sequential(nn.ConvTranspose2d(last, out_channels, 3, stride=2, padding=1, output_padding=1),
                                  nn.Tanh())

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor:
        x = bottleneck
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
