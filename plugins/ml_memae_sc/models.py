"""ML-MemAE-SC (Liu et al., ICCV 2021, HF2-VAD's first stage): a U-Net-shaped autoencoder with a
MemAE-style memory at three encoder levels whose reads reach the decoder through the skip
connections.

- Encoder: ``double_conv(in, r)`` then three stages of max-pooling and ``double_conv`` doubling the
  width (``r = 32``: widths 32, 64, 128, 256); ``double_conv`` is two (conv3x3, BN, ReLU).
- Memory (``ml_memae``): at levels 1, 2, 3 (the paper's ``mem_usage``), each a MemAE memory of
  2,000 items, hard shrinkage at 1/2000, dot-product addressing, entropy loss.
- Decoder: from the bottleneck's read, three stages of a 2x2 stride-2 transposed conv, then
  (levels 2 and 1, the paper's ``concat`` skips) concatenation with the memory's read at that level,
  and ``double_conv``; no skip at level 0 (``none``); a 1x1 conv to the output (tanh: frames lie in
  [-1, 1]; the paper reconstructs optical flow and has none).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from memad import Decoder, Encoder, LevelExplanation, Memory, MemoryOutput
from memad_plugins.memae.memory import MemAEMemory


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """(conv3x3, BatchNorm, ReLU) twice."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class MLMemAEEncoder(Encoder):
    """``double_conv`` at full resolution, then max-pool + ``double_conv`` per further width.

    Args:
        in_channels: frames x channels, filled in by memad.
        widths: channels per level (the paper's ``features_root`` 32 doubled at each level).
    """

    def __init__(self, in_channels: int, widths: list[int] = [32, 64, 128, 256]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"encoder.widths: expected at least 2 levels, got {widths}")
        self.inc = double_conv(in_channels, widths[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), double_conv(widths[i], widths[i + 1]))
                                   for i in range(len(widths) - 1))
        self.channels = list(widths)
        self.reductions = [2**i for i in range(len(widths))]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class MultiLevelMemAE(Memory):
    """A MemAE memory at each of several encoder levels; each level's read replaces its map.

    Args:
        levels: the encoder levels read (the paper: 1, 2, 3, i.e. all but the first).
        items: memory items per level (2,000).
        shrink: hard-shrinkage threshold (1/2000).
        entropy: weight of each level's entropy loss (MemAE's 0.0002).
        address: ``position``: every position's C-vector is a query (frames of any size);
            ``map``: a sample's whole C x h x w map is one query, as the paper's code on its 32x32
            object patches (items then have C*h*w dimensions: only for small inputs).
    """

    multilevel = True

    def __init__(self, encoder_channels: Sequence[int], encoder_reductions: Sequence[int],
                 image_size: Sequence[int] = (256, 256), levels: list[int] = [1, 2, 3], items: int = 2000,
                 shrink: float = 0.0005, entropy: float = 0.0002,
                 address: Literal["position", "map"] = "position"):
        super().__init__()
        if address not in ("position", "map"):
            raise ValueError(f"memory.address: expected 'position' or 'map', got {address!r}")
        n = len(encoder_channels)
        if not levels or any(not -n <= int(lv) < n for lv in levels):
            raise ValueError(f"memory.levels: expected levels of the encoder's {n} maps, got {levels}")
        self.levels, self.address = [int(lv) % n for lv in levels], address
        self.image_size = (int(image_size[0]), int(image_size[1]))
        dims = []
        for lv in self.levels:
            side = [int(s) // encoder_reductions[lv] for s in image_size]
            dims.append(encoder_channels[lv] * (side[0] * side[1] if address == "map" else 1))
        self.memories = nn.ModuleList(MemAEMemory(d, items=items, shrink=shrink, entropy=entropy) for d in dims)

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features: list[Tensor]) -> MemoryOutput:
        reads, loss, logs = [], 0.0, {}
        for lv, memory, f in zip(self.levels, self.memories, features):
            query = f.reshape(f.shape[0], -1, 1, 1) if self.address == "map" else f
            out = memory(query)
            reads.append(out.read.reshape(f.shape))
            loss = loss + out.loss
            logs[f"entropy{lv}"] = out.logs["entropy"]
        return MemoryOutput(read=reads, loss=loss if isinstance(loss, Tensor) else torch.zeros(()), logs=logs)

    @torch.no_grad()
    def explain(self, features: list[Tensor]) -> list[LevelExplanation]:
        """Each level's MemAE explanation; with ``address: map`` a sample is one query covering the frame."""
        out = []
        for lv, memory, f in zip(self.levels, self.memories, features):
            whole = self.address == "map"
            e = memory.explain(f.reshape(f.shape[0], -1, 1, 1) if whole else f)[0]
            e.level, e.cell = lv, self.image_size if whole else None
            out.append(e)
        return out


class MLMemAEDecoder(Decoder):
    """Transposed-conv upsampling from the bottleneck; at the levels in ``concat`` the skip (the
    memory's read there) is concatenated before ``double_conv``; a 1x1 conv and tanh at the end.

    Args:
        concat: levels whose skip is used (the paper: 1 and 2; level 0 has none).
    """

    def __init__(self, level_channels: Sequence[int], out_channels: int, concat: list[int] = [1, 2]):
        super().__init__()
        chans = list(level_channels)
        self.concat = {int(c) for c in concat}
        if any(not 0 <= c < len(chans) - 1 for c in self.concat):
            raise ValueError(f"decoder.concat: expected levels below the bottleneck (0..{len(chans) - 2}), "
                             f"got {concat}")
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        for lv in range(len(chans) - 2, -1, -1):
            self.ups.append(nn.ConvTranspose2d(chans[lv + 1], chans[lv], 2, stride=2))
            self.convs.append(double_conv(2 * chans[lv] if lv in self.concat else chans[lv], chans[lv]))
        self.out = nn.Sequential(nn.Conv2d(chans[0], out_channels, 1), nn.Tanh())

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor:
        x = bottleneck
        for up, conv, lv in zip(self.ups, self.convs, range(len(skips) - 1, -1, -1)):
            x = up(x)
            if lv in self.concat:
                x = torch.cat([skips[lv], x], dim=1)
            x = conv(x)
        return self.out(x)
