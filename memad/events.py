"""Anomalous events from per-frame scores: temporal smoothing, then hysteresis.

A frame's calibrated score is noisy; an operator wants events ("something unusual from
frame 120 to frame 180, worst at 151"). :class:`EventTracker` turns scores into events one
frame at a time, so the same code serves a file and a live stream:

1. **Smoothing**: a causal moving average of the last ``window`` scores (causal, so that a
   live stream needs no future frames; the offline path uses the same average, so offline and
   online events are identical).
2. **Hysteresis**: an event starts when the smoothed score reaches ``threshold`` and ends at
   the first frame whose smoothed score falls below ``threshold - release * |threshold|``; in
   between, frames count as anomalous even when they dip a little below the threshold.
3. **Clean-up**: an event shorter than ``min_frames`` frames is dropped; one starting fewer than
   ``merge_gap`` frames after the previous one ended is merged into it. An event is therefore
   final (and emitted) only once ``merge_gap`` frames have passed after its end.

Events have an inclusive ``start`` and ``end`` frame (the last anomalous frame), their
``peak_frame`` and ``peak_score`` (the highest raw score inside), and ``frames``.

>>> tracker = EventTracker(threshold=1.0, window=1, release=0.0, min_frames=2, merge_gap=0)
>>> [e.as_dict() for e in find_events(range(8), [0, 2, 3, 0, 0, 5, 0, 0], tracker)]
[{'start': 1, 'end': 2, 'frames': 2, 'peak_frame': 2, 'peak_score': 3.0}]
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from typing import Iterable

from .errors import ConfigError

__all__ = ["Event", "Step", "EventTracker", "find_events"]


@dataclass
class Event:
    """An anomalous stretch of frames (``start`` and ``end`` inclusive)."""

    start: int
    end: int
    peak_frame: int
    peak_score: float

    @property
    def frames(self) -> int:
        return self.end - self.start + 1

    def as_dict(self) -> dict:
        out = asdict(self)
        return {"start": out["start"], "end": out["end"], "frames": self.frames, "peak_frame": out["peak_frame"],
                "peak_score": float(out["peak_score"])}


@dataclass
class Step:
    """What one frame did: its smoothed score, whether it is inside an event (its 0/1 decision),
    the number of the open event it belongs to (None outside), and the events that became final."""

    smoothed: float
    active: bool
    event: int | None
    closed: list[Event] = field(default_factory=list)


class EventTracker:
    """Events from scores fed one frame at a time (see the module docstring).

    Args:
        threshold: the calibrated threshold (the detector's ``threshold_``).
        window: frames in the causal moving average (1: no smoothing).
        release: the hysteresis margin, as a fraction of ``|threshold|``.
        min_frames: events shorter than this are dropped.
        merge_gap: events separated by fewer frames than this merge.
    """

    def __init__(self, threshold: float, *, window: int = 5, release: float = 0.1, min_frames: int = 3,
                 merge_gap: int = 5):
        for name, value, low in (("window", window, 1), ("min_frames", min_frames, 1), ("merge_gap", merge_gap, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"events: {name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= release < 1.0:
            raise ConfigError(f"events: release must be a fraction in [0, 1), got {release!r}")
        self.threshold, self.release_level = float(threshold), float(threshold) - release * abs(float(threshold))
        self.min_frames, self.merge_gap = min_frames, merge_gap
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._open: Event | None = None  # the event the current frames belong to
        self._pending: Event | None = None  # ended, but a start within merge_gap may still extend it
        self._gap_peak: tuple[int, float] | None = None  # the highest frame since the pending event ended
        self._count = 0  # events emitted (their numbers)

    def update(self, index: int, score: float) -> Step:
        """Feed frame ``index`` (increasing; frames may be skipped) with its raw ``score``."""
        self._recent.append(float(score))
        smoothed = sum(self._recent) / len(self._recent)
        closed: list[Event] = []
        if self._pending is not None and index - self._pending.end > self.merge_gap and self._open is None:
            closed += self._emit(self._pending)
            self._pending = None
        if self._open is None and smoothed >= self.threshold:
            if self._pending is not None:  # close enough to the last one: the same event goes on, gap included
                self._open, self._pending = self._pending, None
                if self._gap_peak is not None and self._gap_peak[1] > self._open.peak_score:
                    self._open.peak_frame, self._open.peak_score = self._gap_peak
            else:
                self._open = Event(index, index, index, float(score))
        elif self._open is not None and smoothed < self.release_level:
            self._pending, self._open, self._gap_peak = self._open, None, None
        if self._open is None and self._pending is not None and index > self._pending.end \
                and (self._gap_peak is None or score > self._gap_peak[1]):
            self._gap_peak = (index, float(score))
        if self._open is not None:
            ev = self._open
            ev.end = index
            if score > ev.peak_score:
                ev.peak_frame, ev.peak_score = index, float(score)
            return Step(smoothed, True, self._count, closed)
        return Step(smoothed, False, None, closed)

    def _emit(self, event: Event) -> list[Event]:
        if event.frames < self.min_frames:
            return []
        self._count += 1
        return [event]

    def close(self) -> list[Event]:
        """The end of the stream: the events still open or pending, made final."""
        out: list[Event] = []
        for ev in (self._pending, self._open):
            if ev is not None:
                out += self._emit(ev)
        self._pending = self._open = None
        return out


def find_events(index: Iterable[int], scores: Iterable[float], tracker: EventTracker) -> list[Event]:
    """Every event of a finished sequence of scores: ``tracker`` fed frame by frame, then closed."""
    events: list[Event] = []
    for i, s in zip(index, scores):
        events += tracker.update(int(i), float(s)).closed
    return events + tracker.close()
