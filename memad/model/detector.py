"""The detector: one encoder, memory, decoder and scorer wired from a config, and its
estimator API (fit, score, calibrate, predict, stream, save / :func:`load`).

>>> import memad
>>> det = memad.build("mnad_pred", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
>>> type(det.memory).__name__, det.memory.items.shape
('PrototypeMemory', torch.Size([10, 64]))
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import config as cfgmod
from .. import runtime
from ..errors import CheckpointError, ConfigError
from ..interfaces import Decoder, DecoderOutput, Encoder, Memory, MemoryOutput, Scorer, resolve_levels
from ..registry import get_registry
from .checkpoint import read_checkpoint, save_checkpoint


@dataclass
class DetectorOutput:
    """One forward pass: the output image ``(B, C, H, W)`` in [-1, 1], what the memory
    returned, the components' weighted losses (``memory``, ``decoder``), their per-sample
    signals and their log terms."""

    output: Tensor
    memory: MemoryOutput
    losses: dict[str, Tensor] = field(default_factory=dict)
    signals: dict[str, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)


def _instantiate(kind: str, section: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    entry = get_registry().get(kind, section["name"])
    params = {k: v for k, v in section.items() if k != "name"}
    # Parameters the component declares as components are built here, from their own sections.
    for key, sub_kind in cfgmod.nested_components(entry.obj).items():
        if isinstance(params.get(key), Mapping):
            params[key] = _instantiate(sub_kind, params[key], {})
    accepted = inspect.signature(entry.obj).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    ctx = {k: v for k, v in context.items() if takes_all or k in accepted}
    try:
        return entry.obj(**ctx, **params)
    except (TypeError, ValueError) as exc:
        shown = {k: v for k, v in section.items() if k != "name"}
        raise ConfigError(f"{kind} {section['name']!r} ({entry.source}) rejected its config {shown}: {exc}") from exc


def _check_interface(obj: Any, iface: type, what: str) -> Any:
    if not isinstance(obj, iface):
        raise ConfigError(f"{what} must build a memad.{iface.__name__}, got {type(obj).__name__}")
    return obj


class Detector(nn.Module):
    """An anomaly detector: ``fit`` on normal videos, then ``score`` / ``evaluate``.

    Build it with :func:`memad.build`; its parts are ``.encoder``, ``.memory``,
    ``.decoder`` (torch modules) and ``.scorer``. Learned state after ``fit``:
    ``history_`` (per-epoch losses); after :meth:`calibrate`: ``calibration_`` and
    ``threshold_`` (also set alone by :meth:`fit_threshold`).
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
        enc_ctx = {"encoder_channels": list(self.encoder.channels), "encoder_reductions": list(self.encoder.reductions)}
        self.memory: Memory = _check_interface(
            _instantiate("memory", cfg["memory"], {**ctx, **enc_ctx, "in_channels": self.encoder.channels[-1]}),
            Memory, "memory")
        try:
            self.memory_levels = resolve_levels(self.memory.levels, len(self.encoder.channels))
        except ValueError as exc:
            raise ConfigError(f"memory {cfg['memory']['name']!r}: {exc}") from exc
        if not self.memory.multilevel and len(self.memory_levels) != 1:
            raise ConfigError(f"memory {cfg['memory']['name']!r} reads levels {list(self.memory.levels)} but is not "
                              f"multilevel: set multilevel = True and take a list of maps in forward")
        level_channels = self.memory.decoder_channels(self.encoder.channels)
        out_channels = data["channels"] * (1 if cfg["task"] == "prediction" else data["frames"])
        self.decoder: Decoder = _check_interface(
            _instantiate("decoder", cfg["decoder"], {
                **ctx, **enc_ctx, "memory_channels": level_channels[-1], "level_channels": level_channels,
                "out_channels": out_channels}),
            Decoder, "decoder")
        self.scorer: Scorer = _check_interface(_instantiate("scorer", cfg["scorer"], ctx), Scorer, "scorer")
        self.threshold_: float | None = None
        self.calibration_: dict[str, Any] | None = None
        self.history_: list[dict[str, float]] = []
        #: Names of the training videos kept out of training (``train.holdout``), for the calibration.
        self.holdout_videos_: list[str] = []

    # -- shapes ---------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.config["task"]

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
        """Float clips ``(B, L, C, H, W)`` -> model input ``(B, frames*C, H, W)`` and target."""
        if self.config["data"]["input"] == "differences":
            clip = (clip[:, 1:] - clip[:, :-1]) * 0.5
        b, _, c, h, w = clip.shape
        n = self.config["data"]["frames"]
        x = clip[:, :n].reshape(b, n * c, h, w)
        y = clip[:, n] if self.task == "prediction" else x
        return x, y

    def forward(self, x: Tensor) -> DetectorOutput:
        feats = self.encoder(x)
        levels = self.memory_levels
        queries = [feats[i].float() for i in levels]
        # The memory reads in fp32 even under bf16 autocast: its distances and attention weights
        # differ by less than bf16 resolves (it costs little next to the convolutions).
        with runtime.full_precision(x.device):
            mem = self.memory(queries if self.memory.multilevel else queries[0])
        reads = list(mem.read) if self.memory.multilevel else [mem.read]
        if len(reads) != len(levels):
            raise ValueError(f"memory {self.config['memory']['name']!r} returned {len(reads)} reads for its "
                             f"{len(levels)} levels {levels}")
        maps = list(feats)
        for level, read in zip(levels, reads):
            maps[level] = read
        dec = self.decoder(maps[:-1], maps[-1])
        if not isinstance(dec, DecoderOutput):
            dec = DecoderOutput(dec)
        losses = {"memory": mem.loss}
        if dec.loss is not None:
            losses["decoder"] = dec.loss
        return DetectorOutput(dec.image, mem, losses, {**mem.signals, **dec.signals}, {**mem.logs, **dec.logs})

    def loss_terms(self, out: DetectorOutput, target: Tensor) -> dict[str, Tensor]:
        """The training loss as named terms: the task's (``reconstruction``: MSE of the output
        against the target, the next frame for prediction) plus each component's own."""
        return {"reconstruction": F.mse_loss(out.output.float(), target.float()),
                **{k: v.float() for k, v in out.losses.items()}}

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
        """Score every test frame of ``data``; returns :class:`memad.scoring.runner.Scores`.

        ``Scores.scores`` are the scorer's as configured (per-video min-max for the paper's
        presets); with a calibration, ``Scores.calibrated`` holds the calibrated scores too.
        """
        from ..scoring.runner import score_videos

        return score_videos(self, data, labels=labels)

    def decision_function(self, data: Any) -> np.ndarray:
        """Anomaly score per scored test frame (higher = more anomalous): calibrated when calibrated."""
        return self.score(data).decision

    def calibrate(self, data: Any, *, false_alarm_rate: float = 0.01, videos: list[str] | None = None
                  ) -> "Detector":
        """Learn how each per-frame signal is distributed on normal frames, and a threshold.

        ``data``'s ``training`` split (or a VideoSet of normal videos) is scored: by default the
        videos kept out of training (``train.holdout``, :attr:`holdout_videos_`) when ``data``
        holds them, else every video; ``videos`` names others. The signals' normal ranges and
        the threshold that ``false_alarm_rate`` of those frames exceed are fitted on them, and
        a cross-validation by video measures the false-alarm rate on normal footage left out
        of the fit. Sets ``calibration_`` (stored in checkpoints) and ``threshold_``; returns
        ``self``. See :mod:`memad.scoring.calibration`.
        """
        from ..scoring.calibration import calibrate

        calibrate(self, data, false_alarm_rate=false_alarm_rate, videos=videos)
        return self

    def fit_threshold(self, data: Any, *, percentile: float | None = None,
                      contamination: float | None = None) -> "Detector":
        """Set ``threshold_`` to a percentile of the scores of normal frames; returns ``self``.

        The scores are those :meth:`decision_function` gives: calibrated ones when the detector
        is calibrated (prefer :meth:`calibrate`, which sets both), else the scorer's own.
        """
        from ..data import open_split
        from ..scoring.threshold import threshold_from_scores

        if self.calibration_ is None and self.scorer.relative:
            warnings.warn(f"{self.config['name']}: scorer {self.config['scorer']['name']!r} normalises scores per "
                          f"video, so the threshold is relative to each video's range; calibrate() for a threshold "
                          f"that means the same on every video", stacklevel=2)
        normal = self.decision_function(open_split(data, "training", self.config))
        self.threshold_ = threshold_from_scores(normal, percentile, contamination)
        return self

    def predict(self, data: Any) -> np.ndarray:
        """0/1 per scored test frame (1 = anomalous: score at or above ``threshold_``).

        ``data`` is what :meth:`score` takes, or the :class:`~memad.scoring.runner.Scores` it
        returned (to avoid scoring twice). Frames line up with ``score(data).frame``.
        """
        from ..scoring.runner import Scores
        from ..scoring.threshold import predict_labels

        if self.threshold_ is None:
            raise ConfigError(f"{self.config['name']}: no threshold_; call calibrate(data) or fit_threshold(data)")
        scores = data if isinstance(data, Scores) else self.score(data)
        return predict_labels(scores.decision, self.threshold_)

    def score_video(self, frames: Tensor | np.ndarray) -> np.ndarray:
        """Anomaly scores of one video given as frames ``(T, C, H, W)`` (uint8, or float in [-1, 1]).

        Frames must already have the config's size and channels. The first
        ``clip_length - 1`` frames get no score (NaN). Calibrated scores when calibrated.
        """
        from ..scoring.runner import score_frames_tensor

        return score_frames_tensor(self, frames)

    def stream(self, frames: Iterable[Any], **options: Any) -> Iterator[Any]:
        """Score frames as they arrive: yields a :class:`memad.scoring.stream.FrameResult` per
        frame as soon as its clip is complete, with the memory's test-time update applied
        online. See :func:`memad.scoring.stream.stream` for the options."""
        from ..scoring.stream import stream

        return stream(self, frames, **options)

    def evaluate(self, data: Any, labels: str | Path | None = None) -> dict[str, Any]:
        """Frame AUROC (pooled and per-video mean), AUPR, EER, pixel AUROC, frames/s; with a
        calibration also the calibrated AUROC and precision/recall/F1 at ``threshold_``."""
        return self.score(data, labels=labels).metrics(threshold=self.threshold_)

    def save(self, path: str | Path) -> Path:
        """Write config, weights (memory items included), calibration and threshold; load with :func:`load`."""
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


#: Fields that can change on a loaded detector without making its calibration and threshold stale.
_SCORE_NEUTRAL = {"train": {"device", "progress", "compile", "channels_last"},
                  "test": {"mode", "chunk", "amp", "channels_last"},
                  "data": {"cache_dir", "workers", "in_memory", "memory_budget_gb", "pixel_eval_size"}}


def load(path: str | Path, device: str | torch.device = "cpu", *, overrides: Mapping[str, Any] | None = None
         ) -> Detector:
    """A detector from a checkpoint written by :meth:`Detector.save` or by training.

    ``overrides`` (dotted fields, as ``--set`` takes them) rebuild it with a changed config
    around the same weights; calibration and threshold are kept unless a field that changes
    the scores was overridden (then they are dropped with a warning: calibrate again).

    >>> import memad, tempfile, os
    >>> det = memad.build("ae", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
    >>> path = det.save(os.path.join(tempfile.mkdtemp(), "ae.pt"))
    >>> memad.load(path).count_parameters() == det.count_parameters()
    True
    """
    data = read_checkpoint(path)
    config = data["config"]
    if overrides:
        config = cfgmod.validate(cfgmod.apply_overrides(cfgmod.validate(config), overrides))
    det = Detector(config)
    missing, unexpected = det.load_state_dict(data["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the config: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    det.threshold_ = data.get("threshold")
    det.calibration_ = data.get("calibration")
    det.history_ = list(data.get("history") or [])
    det.holdout_videos_ = list(data.get("holdout_videos") or [])
    changed = [k for k in overrides or {} if not _score_neutral(k)]
    if changed and (det.threshold_ is not None or det.calibration_ is not None):
        warnings.warn(f"{path}: {', '.join(changed)} changes the scores, so the stored calibration and threshold are "
                      f"dropped; run memad calibrate (Detector.calibrate) again", stacklevel=2)
        det.threshold_, det.calibration_ = None, None
    return det.to(device).eval()


def _score_neutral(key: str) -> bool:
    section, _, name = str(key).partition(".")
    return name.split(".")[0] in _SCORE_NEUTRAL.get(section, ())


__all__ = ["Detector", "DetectorOutput", "build", "load"]
