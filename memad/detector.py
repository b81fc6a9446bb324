"""The detector: one encoder, memory, decoder and scorer wired from a config.

>>> import memad
>>> det = memad.build("mnad_pred", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
>>> type(det.memory).__name__, det.memory.items.shape
('PrototypeMemory', torch.Size([10, 64]))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from . import config as cfgmod
from .interfaces import Decoder, Encoder, Memory, MemoryOutput, Scorer
from .registry import get_registry


@dataclass
class DetectorOutput:
    """The output image ``(B, C, H, W)`` in [-1, 1] and what the memory returned."""

    output: Tensor
    memory: MemoryOutput


def _instantiate(kind: str, section: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    import inspect

    entry = get_registry().get(kind, section["name"])
    params = {k: v for k, v in section.items() if k != "name"}
    accepted = inspect.signature(entry.obj).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    ctx = {k: v for k, v in context.items() if takes_all or k in accepted}
    try:
        return entry.obj(**ctx, **params)
    except (TypeError, ValueError) as exc:
        raise cfgmod.ConfigError(f"{kind} {section['name']!r} ({entry.source}) rejected its config {params}: {exc}") \
            from exc


def _check_interface(obj: Any, iface: type, what: str) -> Any:
    if not isinstance(obj, iface):
        raise cfgmod.ConfigError(f"{what} must build a memad.{iface.__name__}, got {type(obj).__name__}")
    return obj


class Detector(nn.Module):
    """An anomaly detector: ``fit`` on normal videos, then ``score`` / ``evaluate``.

    Build it with :func:`memad.build`; its parts are ``.encoder``, ``.memory``,
    ``.decoder`` (torch modules) and ``.scorer``. Learned state after ``fit``:
    ``history_`` (per-epoch losses); after :meth:`fit_threshold`: ``threshold_``.
    """

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        self.config = cfgmod.validate(config)
        cfg = self.config
        data = cfg["data"]
        in_channels = data["channels"] * data["frames"]
        ctx = {"task": cfg["task"], "frames": data["frames"], "image_size": cfgmod.image_hw(cfg)}
        self.encoder: Encoder = _check_interface(
            _instantiate("encoder", cfg["encoder"], {**ctx, "in_channels": in_channels}), Encoder, "encoder")
        self.memory: Memory = _check_interface(
            _instantiate("memory", cfg["memory"], {**ctx, "in_channels": self.encoder.channels[-1]}),
            Memory, "memory")
        mem_channels = self.memory.out_channels(self.encoder.channels[-1])
        out_channels = data["channels"] * (1 if cfg["task"] == "prediction" else data["frames"])
        self.decoder: Decoder = _check_interface(
            _instantiate("decoder", cfg["decoder"], {
                **ctx, "encoder_channels": list(self.encoder.channels),
                "encoder_reductions": list(self.encoder.reductions),
                "memory_channels": mem_channels, "out_channels": out_channels}),
            Decoder, "decoder")
        self.scorer: Scorer = _check_interface(_instantiate("scorer", cfg["scorer"], ctx), Scorer, "scorer")
        self.threshold_: float | None = None
        self.history_: list[dict[str, float]] = []

    # -- shapes ---------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def clip_length(self) -> int:
        """Frames per sample: the input frames, plus the target for prediction."""
        return self.config["data"]["frames"] + (1 if self.task == "prediction" else 0)

    def split_clip(self, clip: Tensor) -> tuple[Tensor, Tensor]:
        """Float clips ``(B, L, C, H, W)`` -> model input ``(B, frames*C, H, W)`` and target."""
        b, _, c, h, w = clip.shape
        n = self.config["data"]["frames"]
        x = clip[:, :n].reshape(b, n * c, h, w)
        y = clip[:, n] if self.task == "prediction" else x
        return x, y

    def forward(self, x: Tensor, update: bool = False) -> DetectorOutput:
        feats = self.encoder(x)
        mem = self.memory(feats[-1], update=update)
        return DetectorOutput(self.decoder(feats[:-1], mem.read), mem)

    def count_parameters(self) -> dict[str, int]:
        """Parameters per part (memory items are buffers, not parameters)."""
        parts = {"encoder": self.encoder, "memory": self.memory, "decoder": self.decoder}
        out = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
        out["total"] = sum(out.values())
        return out

    # -- estimator API --------------------------------------------------------------------
    def fit(self, data: Any, *, epochs: int | None = None, out: str | Path | None = None,
            resume: bool = True) -> "Detector":
        """Train on the ``training`` split of ``data`` (a folder, ``"synthetic"``, or a VideoSet).

        With ``out``, a checkpoint is written there after every epoch and a rerun
        resumes from it. Returns ``self``.
        """
        from .training import train

        train(self, data, epochs=epochs, out=out, resume=resume)
        return self

    def score(self, data: Any, labels: str | Path | None = None):
        """Score every test frame of ``data``; returns :class:`memad.evaluation.Scores`."""
        from .evaluation import score_videos

        return score_videos(self, data, labels=labels)

    def decision_function(self, data: Any) -> np.ndarray:
        """Anomaly score per scored test frame (higher = more anomalous)."""
        return self.score(data).scores

    def fit_threshold(self, data: Any, *, percentile: float | None = None,
                      contamination: float | None = None) -> "Detector":
        """Set ``threshold_`` to a percentile of the scores of normal frames; returns ``self``.

        ``data``'s ``training`` split (a folder, ``"synthetic"``), or a VideoSet of normal
        videos, is scored with this detector's scorer; ``percentile=99`` (the default) or
        ``contamination=0.01`` flags about 1% of normal frames. The threshold applies to the
        scorer's output as :meth:`predict` computes it, over the frames of one call: use a
        scorer with ``normalise: none`` to get scores that mean the same on every video
        (per-video min-max scaling, the paper's, gives every video a frame scoring 1; see
        :mod:`memad.threshold`).
        """
        import warnings

        from .data import open_split
        from .evaluation import score_videos
        from .threshold import threshold_from_scores

        if getattr(self.scorer, "normalise", self.scorer.config().get("normalise")) == "video":
            warnings.warn(f"{self.config['name']}: scorer {self.config['scorer']['name']!r} normalises scores per "
                          f"video, so the threshold is relative to each video's range; set scorer.normalise=none "
                          f"for a threshold that means the same on every video", stacklevel=2)
        normal = score_videos(self, open_split(data, "training", self.config))
        self.threshold_ = threshold_from_scores(normal.scores, percentile, contamination)
        return self

    def predict(self, data: Any) -> np.ndarray:
        """0/1 per scored test frame (1 = anomalous: score at or above ``threshold_``).

        ``data`` is what :meth:`score` takes, or the :class:`~memad.evaluation.Scores` it
        returned (to avoid scoring twice). Frames line up with ``score(data).frame``.
        """
        from .evaluation import Scores
        from .threshold import predict_labels

        if self.threshold_ is None:
            raise cfgmod.ConfigError(f"{self.config['name']}: no threshold_; call fit_threshold(data) first")
        scores = data.scores if isinstance(data, Scores) else self.score(data).scores
        return predict_labels(scores, self.threshold_)

    def score_video(self, frames: Tensor | np.ndarray) -> np.ndarray:
        """Anomaly scores of one video given as frames ``(T, C, H, W)`` (uint8, or float in [-1, 1]).

        Frames must already have the config's size and channels. The first
        ``clip_length - 1`` frames get no score (NaN).
        """
        from .evaluation import score_frames_tensor

        return score_frames_tensor(self, frames)

    def evaluate(self, data: Any, labels: str | Path | None = None) -> dict[str, Any]:
        """Frame AUROC (pooled and per-video mean), AUPR, EER, pixel AUROC, frames/s."""
        return self.score(data, labels=labels).metrics()

    def save(self, path: str | Path) -> Path:
        """Write config and weights (memory items included) to ``path``; load with :func:`memad.load`."""
        from .checkpoint import save_checkpoint

        return save_checkpoint(path, self)


def build(preset: str | Mapping[str, Any], **overrides: Any) -> Detector:
    """Build a detector from a preset name (or a config mapping) with overrides.

    Overrides are sections or dotted fields: ``build("mnad_pred", memory="memae")``,
    ``build("mnad_recon", data={"image_size": 64})``, ``build("ae", **{"train.epochs": 5})``.
    The seed in ``train.seed`` fixes the initial weights and memory items.
    """
    config = cfgmod.make_config(preset, overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["train"]["seed"])
        return Detector(config)
