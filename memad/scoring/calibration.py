"""Calibrated scores: per-frame signals normalised with ranges learned on normal frames.

The paper normalises PSNR and the feature distance by their minimum and maximum within
each test video, which needs the whole video first and gives every video, normal or not,
a frame scoring 1. Calibration learns instead, per signal, the range ``[lo, hi]`` that
normal frames span (the ``quantiles`` of their values, 1% and 99% by default) and scales
every later frame by it: ``g(v) = (v - lo) / (hi - lo)``. The scorer's formula is unchanged
(:meth:`memad.interfaces.FrameStats.normalised` applies the ranges), so a calibrated score
depends on its frame alone and means the same on every video and on a live stream.

An image set (:class:`memad.data.images.ImageSet`) is calibrated and scored image by image: its images
are not frames of a video, so ``test.smooth``, ``test.relative`` and ``test.threshold_over: videos`` do
not apply to it (the calibration records 0, 0 and "frames").

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
hold on a new one, and :func:`disagreement` says so when the rate lies far above the one asked;
docs/deploy.md).

The same pass records how the memory reads normal frames, for a memory that explains its reads
(:meth:`memad.Memory.explain`): ``calibration_["memory"]`` holds, per level, each item's usage, the
quantiles of the distances of the positions assigned to it and its nearest exemplar crops
(:meth:`memad.scoring.profile.ReadProfile.summary`); the detect report compares a frame's reads with them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from ..data import open_split
from ..data.clips import holdout_videos
from ..errors import ConfigError, DataError
from ..interfaces import FrameStats, Scorer
from .baseline import align, inputs_aligned, relative_scores, video_baselines
from .profile import ReadProfile
from .reads import recording
from .runner import video_signals
from .step import StepModel, TorchModel
from .threshold import conformal_threshold

__all__ = ["calibrate", "fit_ranges", "calibrated_scores", "video_threshold", "holdout_shortfall",
           "warn_holdout_shortfall", "cross_validated_false_alarms", "disagreement", "require_calibration"]


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


def video_threshold(scores: np.ndarray, video: np.ndarray, false_alarm_rate: float) -> float:
    """The highest of the videos' own ``1 - false_alarm_rate`` quantiles of ``scores``: a new video
    exchangeable with these ``n`` flags more than the rate of its frames with probability at most
    ``1 / (n + 1)``.

    >>> video_threshold(np.r_[np.arange(100.), np.arange(100.) + 50], np.repeat([0, 1], 100), 0.01)
    148.01
    """
    return max(float(np.quantile(scores[video == v], 1.0 - false_alarm_rate)) for v in np.unique(video))


def calibrated_scores(stats: FrameStats, scorer: Scorer, ranges: Mapping[str, list[float]],
                      scoring: Mapping[str, Any]) -> np.ndarray:
    """``scorer``'s scores of ``stats`` scaled by ``ranges``, relative to each video's floor under ``scoring``."""
    return relative_scores(scorer(inputs_aligned(stats, scoring).with_calibration(ranges)), stats.video, scoring)


def _fit(stats: FrameStats, scorer: Scorer, false_alarm_rate: float, quantiles: tuple[float, float],
         scoring: Mapping[str, Any] | None = None):
    """Ranges, threshold and the calibrated scores of ``stats``; ``scoring`` holds ``smooth``, ``relative``
    and ``threshold_over`` (the test config's, as the calibration records them)."""
    scoring = scoring or {}
    ranges = fit_ranges(stats, quantiles)
    scores = calibrated_scores(stats, scorer, ranges, scoring)
    threshold = conformal_threshold(scores, false_alarm_rate)
    if scoring.get("threshold_over") == "videos":
        threshold = max(threshold, video_threshold(scores, stats.video, false_alarm_rate))
    return ranges, threshold, scores


def cross_validated_false_alarms(stats: FrameStats, scorer: Scorer, false_alarm_rate: float,
                                 quantiles: tuple[float, float] = (0.01, 0.99), folds: int = 8,
                                 scoring: Mapping[str, Any] | None = None, bounding: FrameStats | None = None
                                 ) -> tuple[float | None, dict[int, float]]:
    """The fraction of frames flagged when each group of videos is scored with ranges and a threshold
    fitted on the other videos (at most ``folds`` groups, one video each when there are few), and that
    fraction per video (``{video index: rate}``: how far the rate moves from one new video to the next);
    ``(None, {})`` with a single video. ``bounding``: the trained-on videos, whose own quantiles each
    fold's threshold also clears, as the calibration's does."""
    videos = np.unique(stats.video)
    if len(videos) < 2:
        return None, {}
    groups = np.array_split(videos, min(folds, len(videos)))
    flagged = np.zeros(len(stats), dtype=bool)
    for group in groups:
        left_out = np.isin(stats.video, group)
        with warnings.catch_warnings():  # too few frames in a fold: the full fit warns once, if it has too few
            warnings.simplefilter("ignore", UserWarning)
            ranges, threshold, _ = _fit(stats.subset(~left_out), scorer, false_alarm_rate, quantiles, scoring)
        if bounding is not None:
            threshold = max(threshold, _bound(bounding, scorer, ranges, scoring or {}, false_alarm_rate))
        flagged[left_out] = calibrated_scores(stats.subset(left_out), scorer, ranges, scoring or {}) >= threshold
    return float(flagged.mean()), {int(v): float(flagged[stats.video == v].mean()) for v in videos}


#: How far above the asked rate the cross-validated rate may lie before the calibration says its videos
#: disagree (5 points): measured, the rate held where the estimate stayed below it and failed where it
#: rose above (docs/deploy.md, "When the false-alarm rate holds").
DISAGREEMENT_MARGIN = 0.05


def disagreement(calibration: Mapping[str, Any]) -> str | None:
    """A sentence when ``calibration``'s cross-validation by video flagged more than
    :data:`DISAGREEMENT_MARGIN` above the asked rate (its videos differ, so footage unlike them will see
    more false alarms than asked), else None.

    >>> cal = {"false_alarm_rate": 0.01, "check_false_alarm_rate": 0.3, "check_per_video": {"a": 0.6, "b": 0.0}}
    >>> disagreement(cal)[:74]
    'the calibration videos disagree: each scored at a threshold fitted on the '
    >>> disagreement({**cal, "check_false_alarm_rate": 0.02}) is None
    True
    """
    check, rate = calibration.get("check_false_alarm_rate"), float(calibration["false_alarm_rate"])
    if check is None or check <= rate + DISAGREEMENT_MARGIN:
        return None
    per_video = calibration.get("check_per_video") or {}
    worst = max(per_video, key=per_video.get) if per_video else None
    spread = f" ({worst} {per_video[worst]:.0%})" if worst is not None else ""
    return (f"the calibration videos disagree: each scored at a threshold fitted on the others flagged {check:.1%} "
            f"of its normal frames{spread} for {rate:.2%} asked, so footage unlike them will see more false alarms "
            f"than asked; calibrate on normal footage of the camera to watch (memad calibrate CHECKPOINT --data "
            f"FOLDER)")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def warn_holdout_shortfall(model: TorchModel, lengths: Sequence[int], false_alarm_rate: float) -> None:
    """Warn, before training, when ``train.holdout`` of videos of ``lengths`` is too little to calibrate on
    (and keep the sentence in ``model.holdout_warning_``: calibrating on those videos then does not repeat it)."""
    cfg = model.config
    if cfg["train"]["holdout"] <= 0:
        return  # calibrate() warns about calibrating on training videos
    test = cfg["test"]
    short = holdout_shortfall(list(lengths), model.network.clip_length, cfg["train"]["holdout"], false_alarm_rate,
                              test.get("threshold_over", "frames"),
                              trained_bound=int(test.get("relative", 0)) > 0)
    if short:
        model.holdout_warning_ = short
        warnings.warn(f"{cfg['name']}: {short}", stacklevel=3)


#: Fewest calibration videos for the cross-validation (2) and for a threshold over videos (4: a new
#: video then exceeds the rate with a chance of at most 1 in 5).
MIN_VIDEOS = {"frames": 2, "videos": 4}


def holdout_shortfall(lengths: Sequence[int], clip_length: int, holdout: float, false_alarm_rate: float,
                      threshold_over: str = "frames", *, trained_bound: bool = False) -> str | None:
    """What ``train.holdout`` of videos of ``lengths`` lacks for calibrating at ``false_alarm_rate``:
    ``None`` when the held-out videos hold at least ``1 / rate - 1`` scored frames and enough videos
    (:data:`MIN_VIDEOS`), else a sentence that says how much more is needed and the smallest holdout
    that has it. ``trained_bound``: the trained-on videos bound a threshold over videos too (scores
    relative to their floor, :func:`calibrate`), so the videos it needs count all of them, and the
    held-out ones need only be enough for the cross-validation.

    >>> holdout_shortfall([60] * 6, 5, 0.25, 0.01) is None     # 2 videos, 112 scored frames
    True
    >>> holdout_shortfall([60] * 6, 5, 0.25, 0.005)[:58]
    'train.holdout=0.25 keeps 2 videos (112 scored frames) for '
    >>> holdout_shortfall([60] * 6, 5, 0.25, 0.01, "videos") is not None     # 2 videos of 4
    True
    >>> holdout_shortfall([60] * 6, 5, 0.25, 0.01, "videos", trained_bound=True) is None  # 2 held out, 6 in all
    True
    """
    frames_needed = math.ceil(1.0 / false_alarm_rate) - 1
    bounded = trained_bound and threshold_over == "videos"
    held_needed = MIN_VIDEOS["frames"] if bounded else MIN_VIDEOS.get(threshold_over, 2)
    videos_needed = MIN_VIDEOS.get(threshold_over, 2)

    def held(fraction: float) -> tuple[int, int]:
        idx = holdout_videos(len(lengths), fraction)
        return len(idx), sum(max(lengths[i] - clip_length + 1, 0) for i in idx)

    def enough(kept: tuple[int, int]) -> bool:
        return kept[0] >= held_needed and kept[1] >= frames_needed and (not bounded or len(lengths) >= videos_needed)

    n_videos, n_frames = held(holdout)
    if enough((n_videos, n_frames)):
        return None
    larger = ((f / 20, held(f / 20)) for f in range(1, 19) if f / 20 > holdout)  # train.holdout's range, by 0.05
    more = next(((f, kept) for f, kept in larger if enough(kept)), None)
    if more:
        fraction, (v, f) = more
        fix = f"train.holdout={fraction:g} would keep {_count(v, 'video')} ({f} frames)"
    else:
        fix = "holding out more of these videos would not be enough"
    if bounded:
        need = (f"{held_needed} held-out videos, and {videos_needed} normal videos in all for test.threshold_over="
                f"videos (the training data has {len(lengths)})")
    else:
        need = f"{videos_needed} videos{' (test.threshold_over=videos)' if threshold_over == 'videos' else ''}"
    return (f"train.holdout={holdout:g} keeps {_count(n_videos, 'video')} ({n_frames} scored frames) for the "
            f"calibration; a false-alarm rate of {false_alarm_rate:.2%} needs at least {frames_needed} frames and "
            f"{need}: {fix}, or calibrate on a folder of the camera's own normal footage (memad calibrate "
            f"CHECKPOINT --data FOLDER)")


def calibrate(model: TorchModel, data: Any, *, false_alarm_rate: float = 0.01, videos: Sequence[str] | None = None,
              quantiles: tuple[float, float] = (0.01, 0.99), holdout_videos: Sequence[str] = (),
              holdout_fingerprints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The calibration of ``model`` on normal videos of the ``training`` split of ``data`` (see the module
    docstring): its ``signals`` ranges and ``threshold``. ``holdout_videos`` are the videos kept out of
    training, used when ``videos`` is not given and ``data`` holds them (the same videos, by
    ``holdout_fingerprints`` when given; other data with videos of those names is calibrated on whole)."""
    if isinstance(false_alarm_rate, bool) or not 0.0 < false_alarm_rate < 1.0:
        raise ConfigError(f"false_alarm_rate: expected a fraction in (0, 1), got {false_alarm_rate!r}")
    split = open_split(data, "training", model.config)
    chosen, why = _calibration_videos(model.config["name"], split, videos, holdout_videos, holdout_fingerprints)
    reads = ReadProfile(model.config["data"]["channels"], k=4)
    with recording(model.network, reads) as recorded:  # the memory's reads, in the same pass
        stats = video_signals(model.network, split, only=chosen).stats  # the uncalibrated signals are what is fitted
    if len(stats) == 0:
        raise DataError(f"{split.source}: no scored normal frames to calibrate on")
    warmup = int(model.config["test"].get("warmup", 0))
    baseline = {"warmup": warmup, "baseline": video_baselines(stats, warmup) if warmup > 0 else None}
    stats = align(stats, baseline)  # each video shifted by its own start (test.warmup; a no-op at 0)
    test = model.config["test"]
    scoring = {"smooth": int(test.get("smooth", 0)), "relative": int(test.get("relative", 0)),
               "align_inputs": bool(test.get("align_inputs", False)) and model.config["task"] == "prediction",
               "confirm": int(test.get("confirm", 0)), "threshold_over": test.get("threshold_over", "frames")}
    if split.independent_frames:  # an image set: nothing to average over, take a floor of or wait for
        scoring = {"smooth": 0, "relative": 0, "align_inputs": False, "confirm": 0, "threshold_over": "frames"}
    bounding = _trained_on_videos(model, split, chosen, why, baseline, scoring)
    n_videos = len(chosen) + (0 if bounding is None else len(np.unique(bounding.video)))  # that bound the threshold
    said = why == "held out of training" and getattr(model, "holdout_warning_", None)  # warned before training
    if scoring["threshold_over"] == "videos" and n_videos < MIN_VIDEOS["videos"] and not said:
        count = _count(n_videos, "normal video")
        warnings.warn(f"{model.config['name']}: a threshold over videos from {count}: a new video flags"
                      f" more than {false_alarm_rate:.2%} of its frames with a chance of up to "
                      f"1 in {n_videos + 1}; calibrate on more normal videos of the camera for a firmer bound",
                      stacklevel=3)
    ranges, threshold, scores = _fit(stats, model.scorer, false_alarm_rate, quantiles, scoring)
    held_out_threshold = threshold
    trained_on = None if bounding is None else _bound(bounding, model.scorer, ranges, scoring, false_alarm_rate)
    if trained_on is not None:
        threshold = max(threshold, trained_on)
    check, per_video = cross_validated_false_alarms(stats, model.scorer, false_alarm_rate, quantiles, scoring=scoring,
                                                    bounding=bounding)
    calibration = {
        **baseline, **scoring,
        "signals": ranges, "quantiles": list(quantiles), "false_alarm_rate": float(false_alarm_rate),
        "threshold": threshold, "frames": int(len(stats)), "fit_false_alarm_rate": float((scores >= threshold).mean()),
        "videos": [split.names[i] for i in chosen], "videos_from": why, "source": str(split.source),
        "held_out_threshold": held_out_threshold, "trained_video_threshold": trained_on,
        "check_false_alarm_rate": check, "check_per_video": {split.names[v]: r for v, r in per_video.items()},
        "memory": reads.summary() if recorded and reads.samples else None,
    }
    disagree = disagreement(calibration)
    if disagree:
        warnings.warn(f"{model.config['name']}: {disagree}", stacklevel=3)
    return calibration


def _trained_on_videos(model: TorchModel, split, chosen: Sequence[int], why: str, baseline: Mapping[str, Any],
                       scoring: Mapping[str, Any]) -> FrameStats | None:
    """The signals of the training videos the model trained on, when they bound the threshold: scores
    relative (``test.relative``), the threshold over videos, and the calibration videos the held-out ones;
    else None.

    A relative score is a video's excursion above its own running floor: training lowers a video's level,
    which the floor takes away, and leaves its excursions about as wide as a new video's (measured:
    docs/deploy.md). So every normal video of the training split, not only the few held out, is one more
    video whose excursions the threshold must clear; the ranges stay those of the held-out videos.
    """
    if scoring["threshold_over"] != "videos" or scoring["relative"] <= 0 or why != "held out of training":
        return None
    held = set(chosen)
    others = [i for i in range(len(split.names)) if i not in held]
    if not others:
        return None
    stats = align(video_signals(model.network, split, only=others).stats, baseline)
    return stats if len(stats) else None


def _bound(stats: FrameStats, scorer: Scorer, ranges: Mapping[str, list[float]], scoring: Mapping[str, Any],
           false_alarm_rate: float) -> float:
    """The highest of the videos' of ``stats`` own ``1 - rate`` quantiles of their calibrated scores."""
    return video_threshold(calibrated_scores(stats, scorer, ranges, scoring), stats.video, false_alarm_rate)


def _calibration_videos(name: str, split, names: Sequence[str] | None, held: Sequence[str],
                        fingerprints: Mapping[str, str] | None = None) -> tuple[list[int], str]:
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
        if not fingerprints and len(held) < len(split.names):
            warnings.warn(f"{name}: calibrating on the videos of {split.source} named as the held-out ones "
                          f"({', '.join(held)}); the checkpoint does not record their frames (it predates that), "
                          f"so this is right only for the training data: name the videos to calibrate on "
                          f"(memad calibrate --videos) for other footage", stacklevel=3)
        if not fingerprints or all(split.fingerprint(index[n]) == fingerprints.get(n) for n in held):
            return sorted(index[n] for n in held), "held out of training"
        return list(range(len(split.names))), "all (not the training data: its videos of the held-out names differ)"
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
