"""Event recall, false alarms per 1,000 normal frames and detection delay on hand-made sequences,
through the EventTracker's smoothing, hysteresis, minimum length and merging."""

from __future__ import annotations

import numpy as np
import pytest

from memad.errors import ConfigError
from memad.metrics import anomalous_intervals, event_metrics

RAW = {"window": 1, "release": 0.0, "min_frames": 1, "merge_gap": 0}  # the tracker passing scores through


def _video(n, anomalous=(), alarms=()):
    y, s = np.zeros(n, int), np.zeros(n)
    for a, b in anomalous:
        y[a:b + 1] = 1
    for a, b in alarms:
        s[a:b + 1] = 1.0
    return s, y


def _join(*videos):
    s = np.concatenate([v[0] for v in videos])
    y = np.concatenate([v[1] for v in videos])
    return s, y, np.concatenate([np.full(len(v[0]), k) for k, v in enumerate(videos)])


def test_recall_false_alarms_and_delays_by_hand():
    s, y, v = _join(
        _video(25, anomalous=[(10, 14)], alarms=[(12, 16)]),  # detected 2 frames late
        _video(20, alarms=[(5, 7), (15, 15)]),  # two false alarms
        _video(30, anomalous=[(3, 6), (12, 14), (20, 27)], alarms=[(2, 4), (24, 29)]),  # on at start; missed; 4 late
    )
    m = event_metrics(s, y, v, 0.5, **RAW)
    assert (m["events"], m["detected"], m["event_recall"]) == (4, 3, 3 / 4)
    assert (m["alarms"], m["false_alarms"]) == (5, 2)
    normal = (25 - 5) + 20 + (30 - 4 - 3 - 8)
    assert m["normal_frames"] == normal and m["false_alarms_per_1000"] == pytest.approx(2000 / normal)
    assert m["delays"] == [2, 0, 4]
    assert m["delay_median"] == 2.0 and m["delay_p90"] == pytest.approx(3.6)  # 2 + 0.8 * (4 - 2)


def test_the_trackers_clean_up_changes_the_count():
    s, y, v = _join(_video(30, anomalous=[(10, 19)], alarms=[(10, 12), (14, 19)]), _video(20, alarms=[(8, 8)]))
    raw = event_metrics(s, y, v, 0.5, **RAW)
    assert (raw["alarms"], raw["false_alarms"]) == (3, 1)
    # a one-frame spike is dropped under min_frames=2; the two alarms 2 frames apart merge under merge_gap=3
    clean = event_metrics(s, y, v, 0.5, window=1, release=0.0, min_frames=2, merge_gap=3)
    assert (clean["alarms"], clean["false_alarms"], clean["event_recall"]) == (1, 0, 1.0)


def test_smoothing_delays_the_first_alarm():
    # a step from 0 to 1 at the event's start; the causal mean of 3 reaches 0.5 at the second frame (2/3)
    s, y, v = _join(_video(20, anomalous=[(8, 15)], alarms=[(8, 15)]))
    m = event_metrics(s, y, v, 0.5, window=3, release=0.0, min_frames=1, merge_gap=0)
    assert m["delays"] == [1]
    # and it swallows a one-frame spike: (0 + 0 + 1) / 3 < 0.5
    s, y, v = _join(_video(20, alarms=[(8, 8)]))
    assert event_metrics(s, y, v, 0.5, window=3, release=0.0, min_frames=1, merge_gap=0)["alarms"] == 0


def test_hysteresis_keeps_an_alarm_through_a_dip():
    s, y, v = _join(_video(20, anomalous=[(5, 12)]))
    s[5:13] = [1.0, 1.0, 0.85, 0.85, 1.0, 1.0, 1.0, 1.0]
    plain = event_metrics(s, y, v, 1.0, window=1, release=0.0, min_frames=1, merge_gap=0)
    held = event_metrics(s, y, v, 1.0, window=1, release=0.2, min_frames=1, merge_gap=0)
    assert (plain["alarms"], held["alarms"]) == (2, 1)


def test_no_events_no_normal_frames_and_bad_settings():
    m = event_metrics(np.zeros(5), np.zeros(5, int), np.zeros(5, int), 0.5, **RAW)
    assert (m["event_recall"], m["delay_median"], m["false_alarms_per_1000"]) == (None, None, 0.0)
    m = event_metrics(np.ones(5), np.ones(5, int), np.zeros(5, int), 0.5, **RAW)
    assert (m["event_recall"], m["false_alarms_per_1000"], m["delays"]) == (1.0, None, [0])
    with pytest.raises(ConfigError, match="window"):
        event_metrics(np.zeros(5), np.zeros(5, int), np.zeros(5, int), 0.5, window=0)


def test_anomalous_intervals():
    assert anomalous_intervals(np.array([1, 1, 0, 0, 1, 0, 1])) == [(0, 1), (4, 4), (6, 6)]
    assert anomalous_intervals(np.zeros(3)) == []
