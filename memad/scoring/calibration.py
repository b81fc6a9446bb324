"""Calibrated scores: per-frame signals normalised with ranges learned on normal frames.

The paper normalises PSNR and the feature distance by their minimum and maximum within
each test video, which needs the whole video first and gives every video, normal or not,
a frame scoring 1. Calibration learns instead, per signal, the range ``[lo, hi]`` that
normal frames span (the ``quantiles`` of their values, 1% and 99% by default) and scales
every later frame by it: ``g(v) = (v - lo) / (hi - lo)``. The scorer's formula is unchanged
(:meth:`memad.interfaces.FrameStats.normalised` applies the ranges), so a calibrated score
depends on its frame alone and means the same on every video and on a live stream.

The frames calibrated on are normal videos the model did not train on: by default those kept
out of training (``train.holdout``), since a model's errors on its own training videos are
lower than on new footage, and a threshold fitted on them fires far more often on new normal
footage. The ranges and the threshold come from all of them; the threshold is the split-conformal
quantile of their scores (:func:`memad.scoring.threshold.conformal_threshold`: a new normal frame
like them exceeds it with probability at most ``false_alarm_rate``, where the plain percentile lets
more through when the frames are few); a cross-validation by video (each video's frames scored with
ranges and a threshold fitted without it) measures the false-alarm rate to expect on normal
footage the calibration did not see (``calibration_["check_false_alarm_rate"]``, and per video
``calibration_["check_per_video"]``: a wide spread there says the videos differ and the rate will not
hold on a new one; docs/deploy.md).

The same pass records how the memory reads normal frames, for a memory that explains its reads
(:meth:`memad.Memory.explain`): ``calibration_["memory"]`` holds, per level, each item's usage, the
quantiles of the distances of the positions assigned to it and its nearest exemplar crops
(:meth:`memad.scoring.profile.ReadProfile.summary`); the detect report compares a frame's reads with them.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from ..data import open_split
from ..errors import ConfigError, DataError
from ..interfaces import FrameStats, Scorer
from .baseline import align, video_baselines
from .profile import ReadProfile
from .reads import recording
from .runner import video_signals
from .step import StepModel, TorchModel
from .threshold import conformal_threshold

__all__ = ["calibrate", "fit_ranges", "cross_validated_false_alarms", "require_calibration"]


def fit_ranges(stats: FrameStats, quantiles: tuple[float, float] = (0.01, 0.99)) -> dict[str, list[float]]:
    """``{signal: [lo, hi]}``: the ``quantiles`` of each signal over the frames of ``stats``.

    >>> s = FrameStats(np.zeros(101, dtype=int), {"psnr": np.arange(101.0)})
    >>> fit_ranges(s, (0.1, 0.9))["psnr"]
    [10.0, 90.0]
    """
    lo_q, hi_q = quantiles
    if not 0.0 <= lo_q < hi_q <= 1.0:
        raise ConfigError(f"quantiles: expected 0 <= low < high <= 1, got {quantiles!r}")
    out = {}
    for name in stats.names:
        lo, hi = np.quantile(stats[name], [lo_q, hi_q])
        out[name] = [float(lo), float(hi)]
    return out


def _fit(stats: FrameStats, scorer: Scorer, false_alarm_rate: float, quantiles: tuple[float, float]):
    ranges = fit_ranges(stats, quantiles)
    scores = np.asarray(scorer(stats.with_calibration(ranges)), dtype=np.float64)
    return ranges, conformal_threshold(scores, false_alarm_rate), scores


def cross_validated_false_alarms(stats: FrameStats, scorer: Scorer, false_alarm_rate: float,
                                 quantiles: tuple[float, float] = (0.01, 0.99), folds: int = 8
                                 ) -> tuple[float | None, dict[int, float]]:
    """The fraction of frames flagged when each group of videos is scored with ranges and a threshold
    fitted on the other videos (at most ``folds`` groups, one video each when there are few), and that
    fraction per video (``{video index: rate}``: how far the rate moves from one new video to the next);
    ``(None, {})`` with a single video."""
    videos = np.unique(stats.video)
    if len(videos) < 2:
        return None, {}
    groups = np.array_split(videos, min(folds, len(videos)))
    flagged = np.zeros(len(stats), dtype=bool)
    for group in groups:
        left_out = np.isin(stats.video, group)
        with warnings.catch_warnings():  # too few frames in a fold: the full fit warns once, if it has too few
            warnings.simplefilter("ignore", UserWarning)
            ranges, threshold, _ = _fit(stats.subset(~left_out), scorer, false_alarm_rate, quantiles)
        held = np.asarray(scorer(stats.subset(left_out).with_calibration(ranges)), dtype=np.float64)
        flagged[left_out] = held >= threshold
    return float(flagged.mean()), {int(v): float(flagged[stats.video == v].mean()) for v in videos}


def calibrate(model: TorchModel, data: Any, *, false_alarm_rate: float = 0.01, videos: Sequence[str] | None = None,
              quantiles: tuple[float, float] = (0.01, 0.99), holdout_videos: Sequence[str] = ()) -> dict[str, Any]:
    """The calibration of ``model`` on normal videos of the ``training`` split of ``data`` (see the module
    docstring): its ``signals`` ranges and ``threshold``. ``holdout_videos`` are the videos kept out of
    training, used when ``videos`` is not given and ``data`` holds them."""
    if isinstance(false_alarm_rate, bool) or not 0.0 < false_alarm_rate < 1.0:
        raise ConfigError(f"false_alarm_rate: expected a fraction in (0, 1), got {false_alarm_rate!r}")
    split = open_split(data, "training", model.config)
    chosen, why = _calibration_videos(model.config["name"], split, videos, holdout_videos)
    reads = ReadProfile(model.config["data"]["channels"], k=4)
    with recording(model.network, reads) as recorded:  # the memory's reads, in the same pass
        stats = video_signals(model.network, split, only=chosen).stats  # the uncalibrated signals are what is fitted
    if len(stats) == 0:
        raise DataError(f"{split.source}: no scored normal frames to calibrate on")
    warmup = int(model.config["test"].get("warmup", 0))
    baseline = {"warmup": warmup, "baseline": video_baselines(stats, warmup) if warmup > 0 else None}
    stats = align(stats, baseline)  # each video shifted by its own start (test.warmup; a no-op at 0)
    ranges, threshold, scores = _fit(stats, model.scorer, false_alarm_rate, quantiles)
    check, per_video = cross_validated_false_alarms(stats, model.scorer, false_alarm_rate, quantiles)
    return {
        **baseline,
        "signals": ranges, "quantiles": list(quantiles), "false_alarm_rate": float(false_alarm_rate),
        "threshold": threshold, "frames": int(len(stats)), "fit_false_alarm_rate": float((scores >= threshold).mean()),
        "videos": [split.names[i] for i in chosen], "videos_from": why, "source": str(split.source),
        "check_false_alarm_rate": check, "check_per_video": {split.names[v]: r for v, r in per_video.items()},
        "memory": reads.summary() if recorded and reads.samples else None,
    }


def _calibration_videos(name: str, split, names: Sequence[str] | None, held: Sequence[str]) -> tuple[list[int], str]:
    """The video indices to calibrate on, and which they are: named, held out of training, or all."""
    index = {n: i for i, n in enumerate(split.names)}
    if names is not None:
        missing = [n for n in names if n not in index]
        if missing:
            raise DataError(f"{split.source}: no video named {missing[0]!r} to calibrate on (videos: "
                            f"{', '.join(split.names[:10])}{'...' if len(split.names) > 10 else ''})")
        return sorted(index[n] for n in names), "named"
    held = list(held)
    if held and all(n in index for n in held):
        return sorted(index[n] for n in held), "held out of training"
    if held:
        return list(range(len(split.names))), "all (the videos held out of training are not in this data)"
    warnings.warn(f"{name}: calibrating on {split.source}, whose videos the model may have "
                  f"trained on (train.holdout was 0): expect more false alarms on new footage than the rate asked "
                  f"for; train with train.holdout > 0, or calibrate on normal footage the model has not seen",
                  stacklevel=3)
    return list(range(len(split.names))), "all"


def require_calibration(model: StepModel, what: str = "calibrated scores") -> dict[str, Any]:
    """``model.calibration_``, or an error that says how to calibrate."""
    if model.calibration_ is None:
        raise ConfigError(f"{model.config['name']} is not calibrated, which {what} needs: run `memad calibrate "
                          f"CHECKPOINT --data DATA` (or Detector.calibrate(data)) on normal footage")
    return model.calibration_
