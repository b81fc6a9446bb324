"""MPN's network: MNAD's U-Net encoder, its decoder up to the last features (no output head), the
dynamic prototype unit on those full-resolution features, and MPN's output head."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from memad import DecoderOutput, LevelExplanation, Memory, MemoryOutput
from memad_plugins.mnad.unet import UNetDecoder

from .prototypes import DynamicPrototypes


def output_head(c_in: int, c_out: int, hidden: int = 64) -> nn.Sequential:
    """conv3x3, ReLU, conv3x3, ReLU, conv3x3, tanh: MPN's output head (no BatchNorm)."""
    return nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, c_out, 3, padding=1), nn.Tanh())


class MPNDecoder(UNetDecoder):
    """The U-Net decoder whose last features (twice the first encoder width: 128 with MNAD's widths) go
    through the dynamic prototype unit before MPN's output head.

    Reports the per-frame feature reconstruction error as ``distance`` (the ``mnad`` scorer mixes it
    with PSNR, weight 0.5 in the paper) and its own loss: ``feature * feature_loss + distinction *
    distinction_loss`` (1 and 0.0001 in the paper's code).

    Args:
        prototypes: number of prototypes (10).
        feature: weight of the feature reconstruction loss.
        distinction: weight of the distinction loss.
    """

    def __init__(self, encoder_channels: Sequence[int], encoder_reductions: Sequence[int], memory_channels: int,
                 out_channels: int, prototypes: int = 10, feature: float = 1.0, distinction: float = 1e-4):
        super().__init__(encoder_channels, encoder_reductions, memory_channels, out_channels, skip=True)
        dim = self.head[0].in_channels  # the features the MNAD head would have read
        self.head = nn.Identity()
        self.prototypes = DynamicPrototypes(dim, prototypes)
        self.prototypes.cell = (1, 1)  # the decoder's last features are at the input's resolution
        self.out_head = output_head(dim, out_channels)
        self.feature, self.distinction = feature, distinction

    @property
    def explained_unit(self) -> DynamicPrototypes:
        """The part whose reads ``memad explain`` shows (its forward gets the features, it has ``explain``)."""
        return self.prototypes

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> DecoderOutput:
        unit = self.prototypes(super().forward(skips, bottleneck))
        loss = self.feature * unit["feature_loss"] + self.distinction * unit["distinction_loss"]
        return DecoderOutput(self.out_head(unit["read"]), loss=loss, signals={"distance": unit["distance"].detach()},
                             logs={"feature": unit["feature_loss"].detach(),
                                   "distinction": unit["distinction_loss"].detach()})


class PrototypeUnitMemory(Memory):
    """The dynamic prototype unit as a memory at the bottleneck (MNAD's place for it, not MPN's): the
    decoder gets ``read + query`` with the query's channels; ``distance`` and the losses as the unit's.
    """

    def __init__(self, in_channels: int, prototypes: int = 10, feature: float = 1.0, distinction: float = 1e-4):
        super().__init__()
        self.unit = DynamicPrototypes(in_channels, prototypes)
        self.feature, self.distinction = feature, distinction

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features: Tensor) -> MemoryOutput:
        unit = self.unit(features)
        loss = self.feature * unit["feature_loss"] + self.distinction * unit["distinction_loss"]
        return MemoryOutput(read=unit["read"], loss=loss, distance=unit["distance"].detach(),
                            logs={"feature": unit["feature_loss"].detach(),
                                  "distinction": unit["distinction_loss"].detach()})

    def explain(self, features: Tensor) -> list[LevelExplanation]:
        """The unit's per-input explanation at the bottleneck."""
        return self.unit.explain(features)


__all__ = ["MPNDecoder", "PrototypeUnitMemory", "output_head"]
