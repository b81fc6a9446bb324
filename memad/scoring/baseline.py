"""Each video's own baseline (``test.warmup``): signals shifted by how the start of their video differs
from the calibration videos'.

A calibrated score compares a frame's signals with the ranges normal frames spanned on the calibration
videos. When footage differs from video to video (another camera, light, ground, traffic), a new video's
normal frames can sit wholly above or below those ranges: the ranking within the video is good, the scale
between videos is not. With ``warmup = W > 0`` each signal ``v`` of a video (or stream) is shifted before
the calibration's ranges apply:

    v'_t = v_t - (m_t - r),   m_t = median(v_0 ... v_min(t, W - 1)),

``m_t`` the median of the video's first ``W`` scored frames (of all its frames so far, before it has
``W``), ``r`` the median over the calibration videos of their own ``m_(W-1)``. The shift is causal, so a
stream scores each frame as it arrives exactly as offline scoring scores it. It assumes that a video
starts normal: its first ``W`` scored frames set its baseline, and an anomaly there lowers the scores of
what follows. The calibration records ``warmup`` and ``baseline`` (the ``r`` per signal).

With ``smooth = k > 1`` the calibrated *score* of each video (or stream) is first the mean of its last
``k`` scores, the frame's own included (fewer at the video's start): a frame's decision then rests on
``k`` frames, so one noisy normal frame sets neither the threshold nor an alarm, while an event lasting
several frames keeps its level. The decision lags by about ``(k - 1) / 2`` frames.

With ``relative = N > 0`` the calibrated score of each video (or stream) is made relative to its own
recent past, the online analogue of the paper's per-video min-max:

    s'_t = s_t - b_t,   b_t = quantile_q(a_(t-N+1) ... a_t),   a_t = mean(s_(t-k+1) ... s_t),

``a`` the causal moving average of ``k = RELATIVE_SMOOTHING`` scores and ``b`` the low quantile
(``q = RELATIVE_QUANTILE``) of the last ``N`` of them: a running floor that a video's normal frames set
and that an event lasting less than about ``(1 - q) N`` frames does not lift. It does not assume that a
video starts normal; before it has ``N`` frames the floor is that of the frames it has (the first frame
scores 0). Memory is constant (``N`` values per stream). The threshold is fitted on the calibration
videos' relative scores, and the calibration records ``smooth`` and ``relative``.

A prediction model's own signals (the memory's ``distance``, anything but the error's ``mse``, ``psnr``
and ``contrast``) come from its input frames ``t-L ... t-1``, never from the frame ``t`` it predicts: they
lag the frames they describe by one. With ``align_inputs`` (calibrated scores of prediction models)
frame ``t`` takes them from the next clip, whose inputs end at ``t`` (the last frame of a video keeps its
own): a frame's signals then describe frames up to it and no further, so frames just after an event no
longer carry the event's reads. A stream answers each frame one clip later.

With ``confirm = C > 0`` a frame's decision score is the lowest of its relative score and its video's next
``C`` (fewer at the video's end): a frame is flagged when it and the next ``C`` frames all score above
the threshold, so a few frames over it (the prediction's tail after an event, one noisy stretch) do not
flag alone, and an event's last ``C`` frames are left to the frames before them. A stream answers ``C``
frames late. The threshold is fitted on the calibration videos' decision scores, and the calibration
records ``align_inputs`` and ``confirm``.

>>> confirmed(np.array([0., 5., 5., 5., 0., 5.]), np.zeros(6, dtype=int), 2).tolist()
[0.0, 5.0, 0.0, 0.0, 0.0, 5.0]
>>> causal_medians(np.array([1., 3., 2., 9., 9.]), np.zeros(5, dtype=int), 3).tolist()
[1.0, 2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Mapping

import numpy as np

from ..interfaces import FrameStats
from ..network.contract import ALWAYS_SIGNALS  # computed from the output and the scored frame

__all__ = ["causal_medians", "video_baselines", "align", "StreamBaseline", "moving_average", "running_floor",
           "relative_scores", "StreamRelative", "inputs_aligned", "confirmed", "StreamDecisions",
           "RELATIVE_QUANTILE", "RELATIVE_SMOOTHING"]

#: The relative score's floor: this quantile of the recent smoothed scores (low, so that it follows a
#: video's normal frames rather than its events) ...
RELATIVE_QUANTILE = 0.1
#: ... of scores first averaged over this many frames (so that one frame's noise does not set it).
RELATIVE_SMOOTHING = 5


def causal_medians(values: np.ndarray, video: np.ndarray, warmup: int) -> np.ndarray:
    """Per frame, the median of its video's first ``min(k + 1, warmup)`` values (``k`` its position there)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    for v in np.unique(video):
        idx = np.flatnonzero(video == v)
        head = values[idx[:warmup]]
        running = np.array([np.median(head[:j + 1]) for j in range(len(head))])
        out[idx] = np.concatenate([running, np.full(len(idx) - len(head), running[-1] if len(running) else 0.0)])
    return out


def video_baselines(stats: FrameStats, warmup: int) -> dict[str, float]:
    """``{signal: r}``: the median over the videos of ``stats`` of each video's warm-up median."""
    out = {}
    for name, values in stats.signals.items():
        firsts = [float(np.median(values[stats.video == v][:warmup])) for v in np.unique(stats.video)]
        out[name] = float(np.median(firsts))
    return out


def align(stats: FrameStats, calibration: Mapping[str, Any]) -> FrameStats:
    """``stats`` with every signal the calibration has a baseline for shifted (a no-op without a warm-up)."""
    warmup = int(calibration.get("warmup") or 0)
    if warmup <= 0:
        return stats
    baseline = calibration["baseline"]
    signals = {k: (v - (causal_medians(v, stats.video, warmup) - baseline[k]) if k in baseline else v)
               for k, v in stats.signals.items()}
    return FrameStats(stats.video, signals, calibration=stats.calibration)


class StreamBaseline:
    """The same shift, one frame at a time: keeps the first ``warmup`` values of each signal of a stream."""

    def __init__(self, calibration: Mapping[str, Any]):
        self.warmup = int(calibration.get("warmup") or 0)
        self.baseline = calibration.get("baseline") or {}
        self.head: dict[str, list[float]] = {k: [] for k in self.baseline}

    def __call__(self, stats: FrameStats) -> FrameStats:
        """One frame's ``stats`` shifted by the stream's baseline so far (``stats`` itself without a warm-up)."""
        if self.warmup <= 0:
            return stats
        signals = dict(stats.signals)
        for k, ref in self.baseline.items():
            if k not in signals:
                continue
            head = self.head[k]
            if len(head) < self.warmup:
                head.append(float(signals[k][0]))
            signals[k] = signals[k] - (float(np.median(head)) - ref)
        return FrameStats(stats.video, signals, calibration=stats.calibration)


def _floor(smoothed: np.ndarray, window: int) -> float:
    return float(np.quantile(smoothed[-window:], RELATIVE_QUANTILE))


def moving_average(values: np.ndarray, video: np.ndarray, k: int) -> np.ndarray:
    """Per frame, the mean of its video's last ``k`` values up to and including it (fewer at the video's start).

    >>> moving_average(np.array([3., 6., 9., 1., 2.]), np.array([0, 0, 0, 1, 1]), 2).tolist()
    [3.0, 4.5, 7.5, 1.0, 1.5]
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    for v in np.unique(video):
        x = values[video == v]  # each mean as the stream takes it (StreamRelative), so both give the same floats
        out[video == v] = [x[max(0, i - k + 1):i + 1].mean() for i in range(len(x))]
    return out


def running_floor(scores: np.ndarray, video: np.ndarray, window: int) -> np.ndarray:
    """Per frame, its video's floor ``b_t`` (module docstring): the low quantile of the last ``window``
    causal moving averages of its scores, up to and including it.

    >>> running_floor(np.array([1., 1., 1., 1., 1., 9., 9.]), np.zeros(7, dtype=int), 4).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    smoothed = moving_average(scores, video, RELATIVE_SMOOTHING)
    out = np.empty_like(smoothed)
    for v in np.unique(video):
        idx = np.flatnonzero(video == v)
        out[idx] = [_floor(smoothed[idx[:i + 1]], window) for i in range(len(idx))]
    return out


def relative_scores(scores: np.ndarray, video: np.ndarray, calibration: Mapping[str, Any]) -> np.ndarray:
    """``scores`` averaged over their video's last ``smooth`` frames, made relative to its running floor and
    confirmed over its next ``confirm`` frames, as far as the calibration asks (``smooth > 1``,
    ``relative > 0``, ``confirm > 0``); else ``scores`` as they are."""
    k, window = int(calibration.get("smooth") or 0), int(calibration.get("relative") or 0)
    scores = np.asarray(scores, dtype=np.float64)
    if k > 1:
        scores = moving_average(scores, video, k)
    if window > 0:
        scores = scores - running_floor(scores, video, window)
    return confirmed(scores, video, int(calibration.get("confirm") or 0))


def confirmed(scores: np.ndarray, video: np.ndarray, frames: int) -> np.ndarray:
    """Per frame, the lowest of its score and its video's next ``frames`` scores (fewer at the video's end)."""
    scores = np.asarray(scores, dtype=np.float64)
    if frames <= 0:
        return scores
    out = np.empty_like(scores)
    for v in np.unique(video):
        idx = np.flatnonzero(video == v)
        x = scores[idx]
        out[idx] = [x[i:i + frames + 1].min() for i in range(len(x))]
    return out


def inputs_aligned(stats: FrameStats, calibration: Mapping[str, Any]) -> FrameStats:
    """``stats`` with each frame's input signals (all but :data:`ALWAYS_SIGNALS`) taken from its video's next
    frame, when the calibration asks (``align_inputs``); the last frame of a video keeps its own.

    >>> signals = {"psnr": np.array([1., 2., 3., 4.]), "distance": np.array([5., 6., 7., 8.])}
    >>> inputs_aligned(FrameStats(np.array([0, 0, 0, 1]), signals), {"align_inputs": True})["distance"].tolist()
    [6.0, 7.0, 7.0, 8.0]
    """
    if not calibration.get("align_inputs"):
        return stats
    following = np.arange(len(stats.video))  # each frame's next frame in its video, found once for every signal
    for v in np.unique(stats.video):
        idx = np.flatnonzero(stats.video == v)
        following[idx[:-1]] = idx[1:]
    signals = {name: values if name in ALWAYS_SIGNALS else np.asarray(values, dtype=np.float64)[following]
               for name, values in stats.signals.items()}
    return FrameStats(stats.video, signals, calibration=stats.calibration)


class StreamRelative:
    """The same smoothed and relative score, one frame at a time: keeps the stream's last scores, smoothed
    scores and their averages."""

    def __init__(self, calibration: Mapping[str, Any]):
        self.window = int(calibration.get("relative") or 0)
        self.last: collections.deque = collections.deque(maxlen=max(int(calibration.get("smooth") or 0), 1))
        self.recent: collections.deque = collections.deque(maxlen=RELATIVE_SMOOTHING)
        self.smoothed: collections.deque = collections.deque(maxlen=max(self.window, 1))

    def __call__(self, score: float) -> float:
        """One frame's calibrated ``score`` smoothed and made relative (``score`` itself when the calibration
        asks for neither)."""
        self.last.append(score)
        score = float(np.array(self.last).mean())
        if self.window <= 0:
            return score
        self.recent.append(score)
        self.smoothed.append(float(np.array(self.recent).mean()))
        return score - _floor(np.array(self.smoothed), self.window)


class StreamDecisions:
    """The offline decision scores (:func:`inputs_aligned`, the scorer, :func:`relative_scores`), one
    clip at a time: :meth:`push` each clip's one-frame signals with what to hand back with its frame, and
    get the frames whose decision is complete; :meth:`finish` hands back the rest at the stream's end.
    Memory is constant (a clip or two, ``confirm + 1`` scores and the floor's window)."""

    def __init__(self, calibration: Mapping[str, Any], score: Callable[[FrameStats], float]):
        self.align = bool(calibration.get("align_inputs"))
        self.confirm = int(calibration.get("confirm") or 0)
        self.score = score
        self.relative = StreamRelative(calibration)
        self.previous: tuple[FrameStats, Any] | None = None
        self.waiting: collections.deque = collections.deque()

    def push(self, stats: FrameStats, item: Any) -> list[tuple[Any, float]]:
        """One clip's ``stats`` (one frame) and its ``item``: the ``(item, decision score)`` now complete."""
        if not self.align:
            return self._scored(stats, item)
        previous, self.previous = self.previous, (stats, item)
        if previous is None:
            return []
        own, carried = previous
        inputs = {k: v for k, v in stats.signals.items() if k not in ALWAYS_SIGNALS}
        return self._scored(FrameStats(own.video, {**own.signals, **inputs}, calibration=own.calibration), carried)

    def finish(self) -> list[tuple[Any, float]]:
        """The frames still waiting, decided with the scores there are (as at the end of a video)."""
        out = []
        if self.previous is not None:
            out += self._scored(*self.previous)
            self.previous = None
        while self.waiting:
            out.append(self._decided())
        return out

    def _scored(self, stats: FrameStats, item: Any) -> list[tuple[Any, float]]:
        self.waiting.append((item, self.relative(self.score(stats))))
        return [self._decided()] if len(self.waiting) > self.confirm else []

    def _decided(self) -> tuple[Any, float]:
        item, _ = self.waiting[0]
        lowest = min(s for _, s in self.waiting)
        self.waiting.popleft()
        return item, lowest
