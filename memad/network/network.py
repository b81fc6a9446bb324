"""The network: an encoder, a memory and a decoder wired from a config, as one pure ``nn.Module``.

It knows how a clip becomes its input and target (:meth:`Network.split_clip`), runs the
parts (:meth:`Network.forward`, the memory reading in fp32 under autocast) and names the
training loss's terms (:meth:`Network.loss_terms`). It does not train, score, calibrate or
save itself: :mod:`memad.training`, :mod:`memad.scoring` and the estimator
(:class:`memad.Detector`) do, around it.

>>> import torch
>>> from memad import config
>>> net = Network(config.make_config("mnad_pred", {"data.image_size": 32, "encoder.widths": [8, 16, 32, 64]}))
>>> out = net(torch.zeros(2, 12, 32, 32))
>>> tuple(out.output.shape), sorted(out.signals)
((2, 3, 32, 32), ['distance'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from .. import config as cfgmod
from .. import frames, runtime
from ..errors import ConfigError
from ..interfaces import Decoder, DecoderOutput, Encoder, Memory, MemoryOutput, resolve_levels
from .parts import build_component

__all__ = ["Network", "NetworkOutput"]


@dataclass
class NetworkOutput:
    """One forward pass: the output image ``(B, C, H, W)`` in [-1, 1], what the memory returned, the
    components' weighted losses (``memory``, ``decoder``), their per-sample signals and log terms."""

    output: Tensor
    memory: MemoryOutput
    losses: dict[str, Tensor] = field(default_factory=dict)
    signals: dict[str, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)
    decoder: DecoderOutput | None = None


class Network(nn.Module):
    """Encoder, memory and decoder of a validated config (see :func:`memad.config.validate`).

    Each part is built from its section with the context it needs (channels, levels...), checked
    against its interface, and the memory's levels against the encoder's maps.
    """

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        self.config: dict[str, Any] = cfgmod.validate(config)
        cfg = self.config
        data = cfg["data"]
        ctx = {"task": cfg["task"], "frames": data["frames"], "image_size": cfgmod.image_hw(cfg)}
        self.encoder: Encoder = build_component("encoder", cfg["encoder"],
                                                {**ctx, "in_channels": data["channels"] * data["frames"]})
        enc_ctx = {"encoder_channels": list(self.encoder.channels), "encoder_reductions": list(self.encoder.reductions)}
        self.memory: Memory = build_component("memory", cfg["memory"],
                                              {**ctx, **enc_ctx, "in_channels": self.encoder.channels[-1]})
        try:
            self.memory_levels = resolve_levels(self.memory.levels, len(self.encoder.channels))
        except ValueError as exc:
            raise ConfigError(f"memory {cfg['memory']['name']!r}: {exc}") from exc
        if not self.memory.multilevel and len(self.memory_levels) != 1:
            raise ConfigError(f"memory {cfg['memory']['name']!r} reads levels {list(self.memory.levels)} but is not "
                              f"multilevel: set multilevel = True and take a list of maps in forward")
        self.level_channels = self.memory.decoder_channels(self.encoder.channels)
        self.decoder: Decoder = build_component("decoder", cfg["decoder"], {
            **ctx, **enc_ctx, "memory_channels": self.level_channels[-1], "level_channels": self.level_channels,
            "out_channels": self.out_channels})

    # -- shapes ---------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def out_channels(self) -> int:
        """Channels of the decoder's image: one frame for prediction, every input frame for reconstruction."""
        data = self.config["data"]
        return data["channels"] * (1 if self.task == "prediction" else data["frames"])

    @property
    def clip_length(self) -> int:
        """Raw frames per sample: the input frames, plus the target for prediction (plus one more with
        ``data.input: differences``, whose first difference needs the frame before)."""
        data = self.config["data"]
        return data["frames"] + (1 if self.task == "prediction" else 0) + (data["input"] == "differences")

    @property
    def score_offset(self) -> int:
        """The frame of a clip that gets the clip's score (``test.score_frame``), counted from its start."""
        setting, n = self.config["test"]["score_frame"], self.clip_length
        if setting == "last":
            return n - 1
        if setting == "centre":
            return n // 2
        if not 0 <= setting < n:
            raise ConfigError(f"test.score_frame={setting}: a clip has {n} frames (0..{n - 1})")
        return int(setting)

    def split_clip(self, clip: Tensor) -> tuple[Tensor, Tensor]:
        """Float clips ``(B, L, C, H, W)`` -> model input ``(B, frames*C, H, W)`` and target
        (:func:`memad.frames.clip_input`)."""
        data = self.config["data"]
        return frames.clip_input(clip, data["frames"], self.task, data["input"], data["normalise"])

    # -- the pass -------------------------------------------------------------------------
    def forward(self, x: Tensor) -> NetworkOutput:
        feats = self.encoder(x)
        levels = self.memory_levels
        queries = [feats[i].float() for i in levels]
        # The memory reads in fp32 even under bf16 autocast (the one place that says so): its
        # distances and attention weights differ by less than bf16 resolves, at little cost.
        with runtime.full_precision(x.device):
            mem = self.memory(queries if self.memory.multilevel else queries[0])
        reads = mem.read if self.memory.multilevel else [mem.read]
        maps = list(feats)
        for level, read in zip(levels, reads):
            maps[level] = read
        dec = self.decoder(maps[:-1], maps[-1])
        if not isinstance(dec, DecoderOutput):
            dec = DecoderOutput(dec)
        losses = {"memory": mem.loss}
        if dec.loss is not None:
            losses["decoder"] = dec.loss
        return NetworkOutput(dec.image, mem, losses, {**mem.signals, **dec.signals}, {**mem.logs, **dec.logs}, dec)

    def loss_terms(self, out: NetworkOutput, target: Tensor) -> dict[str, Tensor]:
        """The training loss as named terms: the task's (``reconstruction``: MSE of the output
        against the target, the next frame for prediction), each component's own, and the
        decoder's losses that need the target (:meth:`Decoder.target_losses`)."""
        terms = {"reconstruction": F.mse_loss(out.output.float(), target.float()),
                 **{k: v.float() for k, v in out.losses.items()}}
        if out.decoder is not None:
            for name, value in self.decoder.target_losses(out.decoder, target).items():
                if name in terms:
                    raise ConfigError(f"decoder {self.config['decoder']['name']!r}: target_losses names a term "
                                      f"{name!r} that the loss already has ({', '.join(terms)}); rename it")
                terms[name] = value.float()
        return terms

    def count_parameters(self) -> dict[str, int]:
        """Parameters per part (memory items are buffers, not parameters)."""
        parts = {"encoder": self.encoder, "memory": self.memory, "decoder": self.decoder}
        out = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
        out["total"] = sum(out.values())
        return out
