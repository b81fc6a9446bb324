"""The estimator: a network and its scorer with the API people call — fit, score, calibrate, predict,
stream, evaluate, export, save — and :func:`build` / :func:`load`.

It sits above the layers that do the work (:mod:`memad.training`, :mod:`memad.scoring`) and the
pure network they run (:class:`memad.network.Network`); each method is one call into them. The
parts stay reachable as ``.encoder``, ``.memory``, ``.decoder`` (the network's) and ``.scorer``.

>>> import memad
>>> det = memad.build("mnad_pred", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
>>> type(det.memory).__name__, det.memory.items.shape
('PrototypeMemory', torch.Size([10, 64]))
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import config as cfgmod
from . import training
from .checkpoint import read_checkpoint, save_checkpoint
from .data import open_split
from .errors import CheckpointError, ConfigError
from .interfaces import Decoder, Encoder, Memory, Scorer
from .network import Network, NetworkOutput, build_scorer, check_contract
from .network.parts import check_components_available, component_sources
from .scoring import calibration, export, runner, threshold
from .scoring.scores import Scores
from .scoring.step import TorchStep, default_map_hw
from .scoring.stream import FrameResult, stream

__all__ = ["Detector", "build", "load"]


class Detector:
    """An anomaly detector: ``fit`` on normal videos, then ``score`` / ``evaluate`` / ``stream``.

    Build it with :func:`memad.build` (or :func:`memad.load`). Its network is ``.network``
    (an ``nn.Module``: ``.encoder``, ``.memory``, ``.decoder``), its scorer ``.scorer``. Learned state
    after ``fit``: ``history_`` (per-epoch losses) and ``holdout_videos_`` (the videos kept out of
    training); after :meth:`calibrate`: ``calibration_`` and ``threshold_`` (also set alone by
    :meth:`fit_threshold`).
    """

    def __init__(self, config: Mapping[str, Any], *, check: bool = True):
        self.network = Network(config)
        self.scorer: Scorer = build_scorer(self.network.config)
        if check:
            check_contract(self.network, self.scorer)
        self.threshold_: float | None = None
        self.calibration_: dict[str, Any] | None = None
        self.history_: list[dict[str, float]] = []
        #: Names of the training videos kept out of training (``train.holdout``), for the calibration.
        self.holdout_videos_: list[str] = []
        #: Their fingerprints (:meth:`memad.data.VideoSet.fingerprint`): calibrating on other data named alike
        #: takes all of its videos, not those of the held-out names.
        self.holdout_fingerprints_: dict[str, str] = {}
        #: What was said before training about the footage ``train.holdout`` keeps for the calibration
        #: (:func:`memad.scoring.calibration.warn_holdout_shortfall`); :meth:`calibrate` does not say it again.
        self.holdout_warning_: str | None = None
        self.fit_summary_: dict[str, Any] = {}

    # -- the network's parts and shapes ----------------------------------------------------
    config = property(lambda self: self.network.config, doc="The validated config (shared with the network).")
    encoder: Encoder = property(lambda self: self.network.encoder)  # type: ignore[assignment]
    memory: Memory = property(lambda self: self.network.memory)  # type: ignore[assignment]
    decoder: Decoder = property(lambda self: self.network.decoder)  # type: ignore[assignment]
    task = property(lambda self: self.network.task)
    clip_length = property(lambda self: self.network.clip_length, doc="Raw frames per sample.")
    score_offset = property(lambda self: self.network.score_offset, doc="The clip frame that gets its score.")
    memory_levels = property(lambda self: self.network.memory_levels)

    def split_clip(self, clip: Tensor) -> tuple[Tensor, Tensor]:
        """Float clips ``(B, L, C, H, W)`` -> model input and target (:meth:`Network.split_clip`)."""
        return self.network.split_clip(clip)

    def __call__(self, x: Tensor) -> NetworkOutput:
        """One forward pass of the network."""
        return self.network(x)

    def count_parameters(self) -> dict[str, int]:
        """Parameters per part (memory items are buffers, not parameters)."""
        return self.network.count_parameters()

    # The torch.nn.Module calls people make on a detector, on its network.
    def to(self, *args: Any, **kwargs: Any) -> "Detector":
        self.network.to(*args, **kwargs)
        return self

    def train(self, mode: bool = True) -> "Detector":
        """The network's training mode (``nn.Module.train``); :meth:`fit` trains."""
        self.network.train(mode)
        return self

    def eval(self) -> "Detector":
        self.network.eval()
        return self

    @property
    def training(self) -> bool:
        return self.network.training

    def state_dict(self) -> dict[str, Tensor]:
        return self.network.state_dict()

    def load_state_dict(self, state: Mapping[str, Tensor], strict: bool = True):
        return self.network.load_state_dict(state, strict=strict)

    def loss_terms(self, out: NetworkOutput, target: Tensor) -> dict[str, Tensor]:
        """The training loss as named terms (:meth:`Network.loss_terms`)."""
        return self.network.loss_terms(out, target)

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.network.parameters()

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return self.network.named_parameters()

    def buffers(self) -> Iterator[Tensor]:
        return self.network.buffers()

    def modules(self) -> Iterator[nn.Module]:
        return self.network.modules()

    def named_modules(self) -> Iterator[tuple[str, nn.Module]]:
        return self.network.named_modules()

    # -- estimator API --------------------------------------------------------------------
    def fit(self, data: Any, *, epochs: int | None = None, out: str | Path | None = None,
            resume: bool = True, log: Callable[[dict[str, Any]], None] | None = None,
            callbacks: Sequence[Any] = ()) -> "Detector":
        """Train on the ``training`` split of ``data`` (a folder, ``"synthetic"``, or a VideoSet).

        With ``out``, a checkpoint is written there after every epoch and a rerun resumes from it
        (a run of another shape there is refused). ``log`` is called with each epoch's record;
        ``callbacks`` get step and epoch records (``on_step`` / ``on_epoch``, see :func:`memad.training.train`).
        Sets ``history_``, ``holdout_videos_`` and ``fit_summary_`` (time, steps, device); returns ``self``.
        """
        result = training.train(self.network, data, epochs=epochs, out=out, resume=resume, log=log,
                                history=self.history_, callbacks=callbacks)
        self.history_, self.holdout_videos_, self.fit_summary_ = result.history, result.holdout_videos, result.summary
        self.holdout_fingerprints_ = dict(result.holdout_fingerprints)
        return self

    def score(self, data: Any, labels: str | Path | None = None, *, keep_maps: int | str = runner.TOP_MAPS,
              keep_lowest: int = 0) -> Scores:
        """Score every test frame of ``data``; returns :class:`memad.scoring.scores.Scores`.

        ``Scores.scores`` are the scorer's as configured (per-video min-max for the paper's
        presets); with a calibration, ``Scores.calibrated`` holds the calibrated scores too. The
        pixel metrics are computed while scoring; ``Scores.maps`` keeps the error maps of the
        ``keep_maps`` highest- and ``keep_lowest`` lowest-scoring frames (``keep_maps="all"``: all).
        """
        return runner.score_videos(self, data, labels=labels, keep_maps=keep_maps, keep_lowest=keep_lowest)

    def decision_function(self, data: Any) -> np.ndarray:
        """Anomaly score per scored test frame (higher = more anomalous): calibrated when calibrated."""
        return self.score(data).decision

    def calibrate(self, data: Any, *, false_alarm_rate: float = 0.01, videos: list[str] | None = None
                  ) -> "Detector":
        """Learn how each per-frame signal is distributed on normal frames, and a threshold.

        ``data``'s ``training`` split (or a VideoSet of normal videos) is scored: by default the
        videos kept out of training (``train.holdout``, :attr:`holdout_videos_`) when ``data``
        holds them (recognised by their frames, :attr:`holdout_fingerprints_`), else every video;
        ``videos`` names others. The signals' normal ranges and the threshold that
        ``false_alarm_rate`` of those frames exceed are fitted on them, and a cross-validation by
        video measures the false-alarm rate on normal footage left out of the fit. Sets
        ``calibration_`` (stored in checkpoints) and ``threshold_``; returns ``self``.
        See :mod:`memad.scoring.calibration`.
        """
        self.calibration_ = calibration.calibrate(self, data, false_alarm_rate=false_alarm_rate, videos=videos,
                                                  holdout_videos=self.holdout_videos_,
                                                  holdout_fingerprints=self.holdout_fingerprints_)
        self.threshold_ = self.calibration_["threshold"]
        return self

    def fit_threshold(self, data: Any, *, percentile: float | None = None,
                      contamination: float | None = None) -> "Detector":
        """Set ``threshold_`` to a percentile of the scores of normal frames; returns ``self``.

        The scores are those :meth:`decision_function` gives: calibrated ones when the detector
        is calibrated (prefer :meth:`calibrate`, which sets both), else the scorer's own.
        """
        if self.calibration_ is None and self.scorer.relative:
            warnings.warn(f"{self.config['name']}: scorer {self.config['scorer']['name']!r} normalises scores per "
                          f"video, so the threshold is relative to each video's range; calibrate() for a threshold "
                          f"that means the same on every video", stacklevel=2)
        normal = self.decision_function(open_split(data, "training", self.config))
        self.threshold_ = threshold.threshold_from_scores(normal, percentile, contamination)
        return self

    def predict(self, data: Any) -> np.ndarray:
        """0/1 per scored test frame (1 = anomalous: score at or above ``threshold_``).

        ``data`` is what :meth:`score` takes, or the :class:`~memad.scoring.scores.Scores` it
        returned (to avoid scoring twice). Frames line up with ``score(data).frame``.
        """
        if self.threshold_ is None:
            raise ConfigError(f"{self.config['name']}: no threshold_; call calibrate(data) or fit_threshold(data)")
        scores = data if isinstance(data, Scores) else self.score(data)
        return threshold.predict_labels(scores.decision, self.threshold_)

    def score_video(self, frames: Any, *, float_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
        """Anomaly scores of one video given as frames: ``(T, C, H, W)`` / ``(T, H, W, C)`` arrays or
        tensors, or a list of frames, uint8 or float in ``float_range`` (see :mod:`memad.frames`).

        The first ``clip_length - 1`` frames get no score (NaN). Calibrated scores when calibrated.
        """
        return runner.score_frames(self, frames, float_range=float_range)

    def make_step(self, maps: bool, device: torch.device | None = None) -> TorchStep:
        """The per-frame step streaming runs (:class:`memad.scoring.step.StepModel`)."""
        from .distributed import setup

        return TorchStep(self.network, device or setup(self.config["train"]["device"]),
                         default_map_hw(self.config) if maps else None)

    def stream(self, frames: Iterable[Any], **options: Any) -> Iterator[FrameResult]:
        """Score frames as they arrive: yields a :class:`memad.scoring.stream.FrameResult` per
        frame as soon as its clip is complete, with the memory's test-time update applied
        online. See :func:`memad.scoring.stream.stream` for the options."""
        return stream(self, frames, **options)

    def evaluate(self, data: Any, labels: str | Path | None = None, *, resamples: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
        """Frame AUROC (pooled, per video, per scene, its bootstrap interval over ``resamples`` draws of
        the test videos with numpy seed ``seed``), AUPR, EER, pixel AUROC, RBDC/TBDC, frames/s; with a
        calibration also the calibrated AUROC, precision/recall/F1 and the event metrics at
        ``threshold_`` (:meth:`memad.scoring.scores.Scores.metrics`, docs/metrics.md)."""
        return self.score(data, labels=labels, keep_maps=0).metrics(threshold=self.threshold_, resamples=resamples,
                                                                    seed=seed)

    def export(self, path: str | Path, fmt: str = "onnx", **options: Any) -> dict[str, Any]:
        """Export the per-frame step (ONNX or TorchScript), checked against PyTorch; see
        :func:`memad.scoring.export.export`."""
        return export.export(self, path, fmt, **options)

    def save(self, path: str | Path) -> Path:
        """Write config, weights (memory items included), calibration and threshold; load with :func:`load`."""
        return save_checkpoint(path, self.config, self.network.state_dict(), threshold=self.threshold_,
                               calibration=self.calibration_, holdout_videos=list(self.holdout_videos_),
                               holdout_fingerprints=dict(self.holdout_fingerprints_),
                               history=self.history_, components=component_sources(self.config))

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={self.config[k]['name']!r}" for k in ("encoder", "memory", "decoder", "scorer"))
        return f"Detector({self.config['name']!r}: {parts})"


def build(preset: str | Mapping[str, Any], **overrides: Any) -> Detector:
    """Build a detector from a preset name (or a config mapping) with overrides.

    Overrides are sections or dotted fields: ``build("mnad_pred", memory="memae")``,
    ``build("mnad_recon", data={"image_size": 64})``, ``build("ae", **{"train.epochs": 5})``.
    The seed in ``train.seed`` fixes the initial weights and memory items. The plugin contract
    is checked on the built parts before it returns (:mod:`memad.network.contract`).
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
    around the same weights; a field that changes the parameters (``memory.items``, ``encoder.widths``,
    ``memory=memae``...) is refused, since the weights would not fit. Calibration and
    threshold are kept unless a field that changes the scores was overridden (then they are
    dropped with a warning: calibrate again).

    >>> import memad, tempfile, os
    >>> det = memad.build("ae", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
    >>> path = det.save(os.path.join(tempfile.mkdtemp(), "ae.pt"))
    >>> memad.load(path).count_parameters() == det.count_parameters()
    True
    """
    data = read_checkpoint(path)
    check_components_available(data["config"], data.get("components"), f"checkpoint {path}")
    config = cfgmod.validate(data["config"])
    if overrides:
        config = cfgmod.validate(cfgmod.apply_overrides(config, overrides))
    det = Detector(config)
    mismatch = _weights_mismatch(det.network.state_dict(), data["model"])
    if mismatch is not None and overrides:
        raise ConfigError(f"{path}: --set {', '.join(map(str, overrides))} changes the model's parameters "
                          f"({mismatch}), so the checkpoint's weights do not fit it; a change of shape needs "
                          f"retraining (memad train with the new setting)")
    if mismatch is not None:
        raise CheckpointError(f"{path}: weights do not fit the config: {mismatch}")
    det.network.load_state_dict(data["model"])
    det.threshold_ = data.get("threshold")
    det.calibration_ = data.get("calibration")
    det.history_ = list(data.get("history") or [])
    det.holdout_videos_ = list(data.get("holdout_videos") or [])
    det.holdout_fingerprints_ = {str(k): str(v) for k, v in (data.get("holdout_fingerprints") or {}).items()}
    changed = [k for k in overrides or {} if not _score_neutral(k)]
    if changed and (det.threshold_ is not None or det.calibration_ is not None):
        warnings.warn(f"{path}: {', '.join(changed)} changes the scores, so the stored calibration and threshold are "
                      f"dropped; run memad calibrate (Detector.calibrate) again", stacklevel=2)
        det.threshold_, det.calibration_ = None, None
    return det.to(device).eval()


def _weights_mismatch(built: Mapping[str, Tensor], stored: Mapping[str, Tensor]) -> str | None:
    """What differs between a built network's state and a checkpoint's (keys or shapes), or None."""
    missing = [k for k in built if k not in stored]
    unexpected = [k for k in stored if k not in built]
    if missing or unexpected:
        return f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    for key, value in built.items():
        if tuple(value.shape) != tuple(stored[key].shape):
            return f"{key} is {tuple(stored[key].shape)} in the checkpoint, {tuple(value.shape)} here"
    return None


def _score_neutral(key: str) -> bool:
    section, _, name = str(key).partition(".")
    return name.split(".")[0] in _SCORE_NEUTRAL.get(section, ())
