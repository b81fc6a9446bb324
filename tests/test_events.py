"""Events from scores: smoothing, hysteresis, minimum length, merging; one code path online and offline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memad import ConfigError
from memad.events import EventTracker, find_events


def _events(scores, **kw):
    return [e.as_dict() for e in find_events(range(len(scores)), scores, EventTracker(**kw))]


def test_hysteresis_keeps_an_event_open_through_a_dip_above_the_release_level():
    # threshold 1, release 0.2: starts at >= 1, ends below 0.8
    scores = [0, 1.2, 0.9, 1.5, 0.85, 0.7, 0]
    assert _events(scores, threshold=1.0, window=1, release=0.2, min_frames=1, merge_gap=0) == [
        {"start": 1, "end": 4, "frames": 4, "peak_frame": 3, "peak_score": 1.5}]
    # without hysteresis the dip at frame 2 splits it
    assert [(e["start"], e["end"]) for e in _events(scores, threshold=1.0, window=1, release=0.0, min_frames=1,
                                                    merge_gap=0)] == [(1, 1), (3, 3)]


def test_causal_moving_average_by_hand():
    tracker = EventTracker(threshold=10.0, window=3, release=0.0, min_frames=1, merge_gap=0)
    smoothed = [tracker.update(i, s).smoothed for i, s in enumerate([3, 6, 9, 12, 0])]
    assert smoothed == [3.0, 4.5, 6.0, 9.0, 7.0]


def test_short_events_are_dropped_and_close_ones_merged():
    scores = [0, 2, 0, 0, 0, 2, 2, 0, 2, 2, 0, 0, 0, 0, 0]
    # merge_gap 2: frames 5-6 and 8-9 are 1 frame apart: one event 5-9; frame 1 alone is too short
    assert [(e["start"], e["end"]) for e in _events(scores, threshold=1.0, window=1, release=0.0, min_frames=2,
                                                    merge_gap=2)] == [(5, 9)]


def test_an_event_is_emitted_once_merge_gap_frames_have_passed():
    tracker = EventTracker(threshold=1.0, window=1, release=0.0, min_frames=1, merge_gap=3)
    emitted_at = {}
    for i, s in enumerate([0, 2, 2, 0, 0, 0, 0, 0]):
        for e in tracker.update(i, s).closed:
            emitted_at[(e.start, e.end)] = i
    assert emitted_at == {(1, 2): 6}  # ended at 2, final once frame 2 + 3 + 1 arrives
    assert tracker.close() == []


def test_an_open_event_is_emitted_at_close_with_its_peak():
    ev = _events([0, 3, 5, 4], threshold=1.0, window=1, release=0.0, min_frames=1, merge_gap=5)
    assert ev == [{"start": 1, "end": 3, "frames": 3, "peak_frame": 2, "peak_score": 5.0}]


@pytest.mark.parametrize("kw", [{"window": 0}, {"min_frames": 0}, {"merge_gap": -1}, {"release": 1.0},
                                {"window": 2.5}])
def test_bad_settings_are_named(kw):
    with pytest.raises(ConfigError, match=next(iter(kw))):
        EventTracker(threshold=1.0, **kw)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 3), min_size=1, max_size=60), st.integers(1, 4), st.integers(1, 4), st.integers(0, 4))
def test_events_are_ordered_disjoint_and_every_decision_lies_inside_an_event(scores, window, min_frames, gap):
    tracker = EventTracker(threshold=1.5, window=window, release=0.1, min_frames=min_frames, merge_gap=gap)
    active = []
    events = []
    for i, s in enumerate(scores):
        step = tracker.update(i, s)
        active.append(step.active)
        events += step.closed
    events += tracker.close()
    for a, b in zip(events, events[1:]):
        assert a.end + gap < b.start
    for e in events:
        assert e.frames >= min_frames and e.start <= e.peak_frame <= e.end
        assert e.peak_score == max(scores[e.start:e.end + 1])
        assert all(active[e.start:e.end + 1]) or gap > 0  # merged events may span inactive frames
    smoothed = [np.mean(scores[max(0, i - window + 1):i + 1]) for i in range(len(scores))]
    assert any(active) == (max(smoothed) >= 1.5)  # an event starts exactly when the smoothed score reaches it
