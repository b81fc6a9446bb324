"""test.warmup: each video's first frames set its baseline; offline scoring, calibration and streams agree."""

from __future__ import annotations

import numpy as np
import pytest

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.interfaces import FrameStats
from memad.scoring.baseline import StreamBaseline, align, causal_medians, video_baselines

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


def test_causal_medians_by_hand():
    values = np.array([4.0, 2.0, 6.0, 100.0, 5.0, 1.0, 3.0])
    video = np.array([0, 0, 0, 0, 1, 1, 1])
    # video 0: median of [4], [4, 2], [4, 2, 6], then held; video 1 starts again
    assert causal_medians(values, video, 3).tolist() == [4.0, 3.0, 4.0, 4.0, 5.0, 3.0, 3.0]


def test_a_video_shifted_by_a_constant_aligns_to_the_same_values():
    rng = np.random.default_rng(0)
    base = rng.normal(size=40)
    video = np.repeat([0, 1], 20)
    stats = FrameStats(video, {"distance": np.concatenate([base[:20], base[:20] + 7.5])})
    cal = {"warmup": 5, "baseline": video_baselines(stats, 5)}
    aligned = align(stats, cal)["distance"]
    np.testing.assert_allclose(aligned[:20], aligned[20:])
    # the reference is the median of the two videos' warm-up medians
    m = float(np.median(base[:5]))
    assert cal["baseline"]["distance"] == pytest.approx(np.median([m, m + 7.5]))


def test_the_stream_shift_equals_the_offline_one_frame_by_frame():
    rng = np.random.default_rng(1)
    values = rng.normal(size=25)
    stats = FrameStats(np.zeros(25, dtype=int), {"distance": values})
    cal = {"warmup": 6, "baseline": {"distance": 0.3}}
    offline = align(stats, cal)["distance"]
    online = StreamBaseline(cal)
    streamed = [online(FrameStats(np.zeros(1, dtype=int), {"distance": np.array([v])}))["distance"][0]
                for v in values]
    np.testing.assert_allclose(streamed, offline)


def test_without_a_warmup_nothing_moves():
    stats = FrameStats(np.zeros(3, dtype=int), {"distance": np.array([1.0, 2.0, 3.0])})
    assert align(stats, {"warmup": 0, "baseline": None}) is stats
    one = FrameStats(np.zeros(1, dtype=int), {"distance": np.array([2.0])})
    assert StreamBaseline({"warmup": 0})(one) is one


def test_calibrated_scores_with_a_warmup_stream_as_they_score_offline():
    det = memad.build("mnad_pred", **tiny(test={"warmup": 6, "amp": False, "channels_last": False},
                                          train={"max_steps_per_epoch": 3}))
    train = fit_and_calibrate(det, SPEC)
    assert det.calibration_["warmup"] == 6 and set(det.calibration_["baseline"]) >= {"psnr", "distance"}
    video = make_synthetic("testing", (32, 32), 3, 32, SPEC).video(1)
    offline = det.score(video).calibrated
    streamed = np.array([r.score for r in det.stream(list(video.frames))])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    # and the calibration without a warm-up records none
    plain = memad.build("mnad_pred", **tiny(test={"amp": False, "channels_last": False}))
    plain.calibrate(train)
    assert plain.calibration_["warmup"] == 0 and plain.calibration_["baseline"] is None


class _Distance(memad.Scorer):
    requires = ("distance",)

    def __call__(self, stats):
        return stats.normalised("distance")


def test_the_cross_validation_reports_each_video_the_others_calibrate():
    from memad.scoring.calibration import cross_validated_false_alarms

    values = np.linspace(0.0, 1.0, 200)
    stats = FrameStats(np.repeat([0, 1], 200), {"distance": np.concatenate([values, values + 10.0])})
    overall, per_video = cross_validated_false_alarms(stats, _Distance(), 0.01)
    # fitted on video 0, every frame of video 1 is above its threshold; fitted on video 1, none of video 0
    assert per_video == {0: 0.0, 1: 1.0} and overall == 0.5
    # one baseline per video removes the shift: each video's held-out rate is then that of its twin
    cal = {"warmup": 10, "baseline": video_baselines(stats, 10)}
    overall, per_video = cross_validated_false_alarms(align(stats, cal), _Distance(), 0.01)
    assert per_video[0] == per_video[1] and overall <= 0.02
