"""DMAD-PDM's encoder and decoder.

The encoder (``dmad``) returns the input frames themselves as its first map, then its four stages: the
pyramid deformation module estimates its displacement fields from the frames, and memad hands a decoder
only the encoder's maps, so this is how the frames reach it. The decoder (``dmad_pdm``) decodes the
quantised bottleneck into a prototype frame, warps it with the PDM's coarse then fine field, and fills
what the warped foreground mask leaves with a learned background image (:mod:`.background`).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memad import Decoder, DecoderOutput, Encoder
from memad_plugins.mnad.unet import pooled_stages

from .background import Background
from .layers import basic, head, open_basic, upsample
from .pdm import OffsetNet, gradient_difference, magnitude_loss, scaled_window, smoothness_loss, warp, window_max


class DMADEncoder(Encoder):
    """DMAD-PDM's encoder: the input frames as its first map, then stages of ``widths`` channels.

    Each stage is two conv-BN-ReLU, max-pooled between stages; the bottleneck ends in a plain convolution
    (its output is what the codebook quantises).

    Maps: ``[x, f_0, ..., f_n]`` with channels ``[in_channels, *widths]`` and reductions ``[1, 1, 2, 4, ...]``.

    Args:
        in_channels: frame channels x input frames, filled in by memad.
        widths: channels per stage (the official Ped2 model: 32, 64, 128, 256).
    """

    def __init__(self, in_channels: int, widths: list[int] = [32, 64, 128, 256]):
        super().__init__()
        if len(widths) < 3:
            raise ValueError(f"encoder.widths: expected at least 3 stages, got {widths}")
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList(basic(chans[i], chans[i + 1]) for i in range(len(widths) - 1))
        self.bottleneck = open_basic(widths[-2], widths[-1])
        self.pool = nn.MaxPool2d(2, 2)
        self.channels = [in_channels, *widths]
        self.reductions = [1] + [2**i for i in range(len(widths))]

    def forward(self, x: Tensor) -> list[Tensor]:
        return [x, *pooled_stages(x, self.stages, self.pool, self.bottleneck)]


class PDMDecoder(Decoder):
    """Prototype decoder + pyramid deformation module + background (DMAD-PDM's decoding).

    The decoder's skips are the encoder's maps ``[x, f_0, ..., f_{n-1}]`` (``dmad`` encoder); the
    bottleneck is the codebook's read ``[quantised, latents]``. Decoding: ``f_n``-level block on the
    quantised map with a skip from the (detached) latents, upsampling, a block with a skip from the
    (detached) ``f_{n-1}``, then plain blocks and the tanh head: the prototype ``P``. A sigmoid mask ``M``
    comes from ``f_0`` and the upsampled ``f_1``. With the coarse field ``o1`` and the fine ``o2`` from the
    frames ``x``, the output is ``W2(W1(P)) * W2(W1(M)) + (1 - W2(W1(M))) * B``, ``B`` the background.

    Loss, in ``forward``: ``deformation * (magnitude * (|o1| + |o2|) + smooth * (S_7(o1) + S_3(o2)))``; with
    the target ``y`` (:meth:`target_losses`): ``single_warp * |O1 - y|^2`` for the single-warp output
    ``O1 = W1(P) W1(M) + (1 - W1(M)) B``, ``gradient * (G(O, y) + single_warp_gradient * G(O1, y))`` with
    ``G`` the mean gradient-difference map, and ``background_loss * |B - y|^2``. Signals: ``deformation``
    (the largest box mean of ``|o1|``'s ``deformation_component``, box ``offset_window`` at 256 px), and
    from the target ``recon_l1`` (mean absolute error) and ``gradient_error`` (largest box mean of the
    gradient-difference map, box ``gradient_window``).

    Args:
        skip_channels: width of the two skip heads (32).
        offset_channels: width of the offset net (64).
        max_offsets: largest coarse and fine displacement in pixels (2, 3).
        magnitude: weight of the fields' mean length inside the deformation term (0.4).
        smooth: weight of the smoothness terms inside it (1).
        smooth_kernels: smoothness window of the coarse and the fine field (7, 3).
        deformation: gamma_2, the weight of the whole deformation term (0.25).
        background: an image file to start the background from (the official code ships one per
            dataset); null estimates it from the first training batches (:mod:`.background`).
        background_batches: how many training batches the estimate takes the median of.
        background_loss: weight of the background's MSE to the target frame (1).
        gradient: beta_1, the weight of the gradient-difference losses (1).
        single_warp: weight of the single-warp output's MSE to the target (1).
        single_warp_gradient: the single-warp output's share of the gradient-difference loss (0.25).
        detach_skips: the skip heads read their maps detached (as the official code).
        cells: grid of the coordinate channels (32).
        deformation_component: ``y`` (Ped2, Avenue), ``x``, or ``norm`` (ShanghaiTech) of the coarse field.
        offset_window, gradient_window: the boxes (rows, columns) of the two window errors, in pixels of
            a 256-pixel frame, scaled to the frame size.
    """

    def __init__(self, encoder_channels: Sequence[int], encoder_reductions: Sequence[int], memory_channels: int,
                 out_channels: int, task: str, frames: int, image_size: tuple[int, int],
                 skip_channels: int = 32, offset_channels: int = 64, max_offsets: list[float] = [2.0, 3.0],
                 magnitude: float = 0.4, smooth: float = 1.0, smooth_kernels: list[int] = [7, 3],
                 deformation: float = 0.25, background: str | None = None, background_batches: int = 8,
                 background_loss: float = 1.0, detach_skips: bool = True, cells: int = 32,
                 deformation_component: Literal["y", "x", "norm"] = "y",
                 offset_window: list[int] = [7, 18], gradient_window: list[int] = [16, 14],
                 gradient: float = 1.0, single_warp: float = 1.0, single_warp_gradient: float = 0.25):
        super().__init__()
        chans, reds = list(encoder_channels), list(encoder_reductions)
        frame_channels = out_channels // frames if task == "reconstruction" else out_channels
        if reds[0] != 1 or chans[0] != frame_channels * frames or len(chans) < 4:
            raise ValueError(f"decoder dmad_pdm: needs an encoder whose first map is the input frames "
                             f"({frame_channels * frames} channels, reduction 1) followed by 3 or more stages "
                             f"(encoder: dmad); got channels {chans}, reductions {reds}")
        widths = chans[1:]
        if memory_channels not in (widths[-1], 2 * widths[-1]):
            raise ValueError(f"decoder dmad_pdm: the memory hands it {memory_channels} channels; expected "
                             f"{widths[-1]} (the quantised map) or {2 * widths[-1]} (quantised + latents)")
        for name, pair in (("max_offsets", max_offsets), ("smooth_kernels", smooth_kernels),
                           ("offset_window", offset_window), ("gradient_window", gradient_window)):
            if len(pair) != 2 or min(pair) <= 0:
                raise ValueError(f"decoder.{name}: expected two positive values, got {pair}")
        for name, value in (("gradient", gradient), ("single_warp", single_warp),
                            ("single_warp_gradient", single_warp_gradient), ("background_loss", background_loss)):
            if value < 0:
                raise ValueError(f"decoder.{name}: expected a weight >= 0, got {value}")
        if min(smooth_kernels) < 2:
            raise ValueError(f"decoder.smooth_kernels: expected windows of at least 2, got {smooth_kernels}")
        h, w = image_size
        if h % 2 ** (len(widths) - 1) or w % 2 ** (len(widths) - 1) or h % 4 or w % 4:
            raise ValueError(f"decoder dmad_pdm: data.image_size {list(image_size)} must be a multiple of "
                             f"{max(4, 2 ** (len(widths) - 1))} on both sides")
        s = skip_channels
        self.bottleneck_skip = memory_channels == 2 * widths[-1]
        self.detach_skips = detach_skips
        self.latent_head = basic(widths[-1], s) if self.bottleneck_skip else None
        self.level_head = basic(widths[-2], s)
        self.entry = basic(widths[-1] + (s if self.bottleneck_skip else 0), widths[-1], coords=True, cells=cells)
        self.ups = nn.ModuleList(upsample(widths[i + 1], widths[i]) for i in range(len(widths) - 2, -1, -1))
        self.blocks = nn.ModuleList(basic(widths[i] + (s if i == len(widths) - 2 else 0), widths[i], coords=True,
                                          cells=cells) for i in range(len(widths) - 2, 0, -1))
        self.out_head = head(widths[0], out_channels, widths[0], nn.Tanh())
        self.mask_up = upsample(widths[1], widths[0])
        self.mask_head = head(2 * widths[0], out_channels, widths[0], nn.Sigmoid())
        self.offsets = OffsetNet(chans[0], offset_channels, max_offsets, cells=cells)
        self.background = Background(frame_channels, (h, w), path=background, batches=background_batches)
        self.frames, self.frame_channels, self.out_channels = frames, frame_channels, out_channels
        self.magnitude, self.smooth, self.smooth_kernels = magnitude, smooth, (int(smooth_kernels[0]),
                                                                                int(smooth_kernels[1]))
        self.deformation, self.background_loss = deformation, background_loss
        self.gradient, self.single_warp, self.single_warp_gradient = gradient, single_warp, single_warp_gradient
        self.component = deformation_component
        self.offset_window = scaled_window(offset_window, (h, w), 256)
        self.gradient_window = scaled_window(gradient_window, (h, w), 256)

    def _skip(self, x: Tensor) -> Tensor:
        return x.detach() if self.detach_skips else x

    def prototype(self, skips: Sequence[Tensor], bottleneck: Tensor) -> Tensor:
        """The prototype frame ``P`` decoded from the codebook's read (before any warp), in [-1, 1]."""
        c = bottleneck.shape[1] // 2 if self.bottleneck_skip else bottleneck.shape[1]
        y = bottleneck[:, :c]
        if self.latent_head is not None:
            y = torch.cat([y, self.latent_head(self._skip(bottleneck[:, c:]))], dim=1)
        y = self.entry(y)
        level = self.level_head(self._skip(skips[-1]))
        for i, up in enumerate(self.ups):
            y = up(y)
            if i == 0:
                y = torch.cat([y, level], dim=1)
            if i < len(self.blocks):
                y = self.blocks[i](y)
        return self.out_head(y)

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> DecoderOutput:
        x = skips[0]
        b, _, h, w = x.shape
        frames = x.reshape(b, self.frames, self.frame_channels, h, w)
        self.background.observe(frames)  # the estimate, during the first training batches only
        proto = self.prototype(skips, bottleneck)
        mask = self.mask_head(torch.cat([self.mask_up(skips[2]), skips[1]], dim=1))
        coarse, fine = self.offsets(x)
        bkg = self.background.image(self.out_channels // self.frame_channels).to(proto.dtype).detach()
        proto1, mask1 = warp(proto, coarse), warp(mask, coarse)
        warped, warped_mask = warp(proto1, fine), warp(mask1, fine)
        image = warped * warped_mask + (1 - warped_mask) * bkg
        k1, k2 = self.smooth_kernels
        magnitude = self.magnitude * (magnitude_loss(coarse) + magnitude_loss(fine))
        smooth = self.smooth * (smoothness_loss(coarse, k1) + smoothness_loss(fine, k2))
        extras = {"single_warp": proto1 * mask1 + (1 - mask1) * bkg}
        return DecoderOutput(image, loss=self.deformation * (magnitude + smooth),
                             signals={"deformation": self.deformation_signal(coarse).detach()},
                             logs={"magnitude": magnitude.detach(), "smoothness": smooth.detach()}, extras=extras)

    def target_losses(self, output: DecoderOutput, target: Tensor) -> dict[str, Tensor]:
        """The official loss's terms that need the target: the gradient-difference losses of the output and
        (a quarter) of the single-warp output, the single-warp output's MSE, and the background's MSE."""
        target = target.float()
        image = output.image.float()
        grad = gradient_difference(image, target).mean()
        bkg = self.background.image(self.out_channels // self.frame_channels).float()
        single = output.extras["single_warp"].float()
        grad = grad + self.single_warp_gradient * gradient_difference(single, target).mean()
        return {"single_warp": self.single_warp * F.mse_loss(single, target),
                "gradient_difference": self.gradient * grad,
                "background": self.background_loss * F.mse_loss(bkg.expand_as(target), target)}

    def deformation_signal(self, coarse: Tensor) -> Tensor:
        """Per sample: the largest box mean of the coarse field's chosen component (the official ``err1``)."""
        if self.component == "norm":
            values = coarse.float().pow(2).sum(-1).sqrt()
        else:
            values = coarse[..., 1 if self.component == "y" else 0].float().abs()
        return window_max(values, self.offset_window)

    def target_signals(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``recon_l1``: mean absolute error (images in [-1, 1]); ``gradient_error``: the largest box mean
        of the gradient-difference map (the official test-time ``mse2`` and ``grad``)."""
        output, target = output.float(), target.float()
        return {"recon_l1": (output - target).abs().flatten(1).mean(1),
                "gradient_error": window_max(gradient_difference(output, target), self.gradient_window)}


__all__ = ["DMADEncoder", "PDMDecoder"]
