"""Deployment metrics at a threshold, on the events an operator would see: the scores of each video
go through :class:`memad.events.EventTracker` (causal smoothing, hysteresis, minimum length,
merging), as ``memad detect`` does, and the alarms it raises are compared with the ground-truth
anomalous intervals (maximal runs of anomalous frames of a video).

- **Event recall**: the fraction of ground-truth intervals with at least one frame inside an alarm.
- **False alarms per 1,000 normal frames**: alarms that share no frame with a ground-truth interval,
  per 1,000 normal test frames.
- **Detection delay**: for each detected interval, frames from its first frame to its first frame
  inside an alarm (0 when an alarm is already on); the median and the 90th percentile (numpy's linear
  interpolation) over detected intervals. Missed intervals have no delay and are not counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..events import EventTracker, find_events
from ._inputs import frame_arrays

__all__ = ["event_metrics", "anomalous_intervals"]


def anomalous_intervals(labels: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of anomalous frames as ``(start, end)``, both inclusive.

    >>> anomalous_intervals(np.array([0, 1, 1, 0, 1]))
    [(1, 2), (4, 4)]
    """
    y = np.concatenate([[0], np.asarray(labels).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(y))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def event_metrics(scores: np.ndarray, labels: np.ndarray, video: np.ndarray, threshold: float, *,
                  window: int = 5, release: float = 0.1, min_frames: int = 3, merge_gap: int = 5) -> dict[str, Any]:
    """Event recall, false alarms per 1,000 normal frames and detection delays at ``threshold``.

    ``window``, ``release``, ``min_frames`` and ``merge_gap`` are the :class:`~memad.events.EventTracker`'s
    (the defaults are ``memad detect``'s). A fresh tracker runs over each video's scores in array order.
    Returns ``events`` (ground-truth intervals), ``detected``, ``event_recall``, ``alarms``,
    ``false_alarms``, ``normal_frames``, ``false_alarms_per_1000``, ``delays`` (per detected interval),
    ``delay_median`` and ``delay_p90`` (None where undefined).
    """
    scores, labels, video = frame_arrays(scores, labels, video)
    EventTracker(threshold, window=window, release=release, min_frames=min_frames, merge_gap=merge_gap)  # checks
    events = detected = alarms = false_alarms = 0
    delays: list[int] = []
    for v in np.unique(video):
        s, y = scores[video == v], labels[video == v]
        tracker = EventTracker(threshold, window=window, release=release, min_frames=min_frames,
                               merge_gap=merge_gap)
        flagged = np.zeros(len(s), dtype=bool)
        for ev in find_events(range(len(s)), s, tracker):
            flagged[ev.start:ev.end + 1] = True
            alarms += 1
            false_alarms += int(not y[ev.start:ev.end + 1].any())
        for start, end in anomalous_intervals(y):
            events += 1
            hit = np.flatnonzero(flagged[start:end + 1])
            if len(hit):
                detected += 1
                delays.append(int(hit[0]))
    normal = int((~labels).sum())
    return {
        "events": events, "detected": detected, "event_recall": detected / events if events else None,
        "alarms": alarms, "false_alarms": false_alarms, "normal_frames": normal,
        "false_alarms_per_1000": 1000.0 * false_alarms / normal if normal else None,
        "delays": delays,
        "delay_median": float(np.median(delays)) if delays else None,
        "delay_p90": float(np.percentile(delays, 90)) if delays else None,
    }
