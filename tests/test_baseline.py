"""test.warmup: each video's first frames set its baseline; offline scoring, calibration and streams agree."""

from __future__ import annotations

import warnings

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


def test_each_fold_of_the_cross_validation_also_clears_the_trained_on_videos_as_the_calibration_does():
    from memad.scoring.calibration import cross_validated_false_alarms

    values = np.linspace(0.0, 1.0, 100)
    # two held-out videos: video 1 spans twice video 0's range, so fitted on video 0 half of video 1 is flagged
    stats = FrameStats(np.repeat([0, 1], 100), {"distance": np.concatenate([values, 2.0 * values])})
    scoring = {"threshold_over": "videos"}
    _, per_video = cross_validated_false_alarms(stats, _Distance(), 0.01, (0.0, 1.0), scoring=scoring)
    assert per_video[1] == pytest.approx(0.5, abs=0.02)
    # a trained-on video as wide as video 1 raises video 0's fold threshold to it: nothing of video 1 is flagged
    wide = FrameStats(np.zeros(100, dtype=int), {"distance": 2.0 * values})
    _, per_video = cross_validated_false_alarms(stats, _Distance(), 0.01, (0.0, 1.0), scoring=scoring, bounding=wide)
    assert per_video[1] <= 0.01 + 1 / 100


def test_calibrating_on_videos_that_disagree_warns_with_the_cross_validated_rate(monkeypatch):
    import memad.scoring.calibration as calibration

    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 2}))
    train = make_synthetic("training", (32, 32), 3, 32, SPEC)
    det.fit(train)
    measured = {}

    def disagreeing(stats, *args, **kwargs):
        measured["videos"] = sorted(np.unique(stats.video).tolist())
        return 0.25, {0: 0.75, 1: 0.0, 2: 0.0}

    monkeypatch.setattr(calibration, "cross_validated_false_alarms", disagreeing)
    with pytest.warns(UserWarning, match=r"mnad_pred: the calibration videos disagree: .* flagged 25.0% of its "
                                         r"normal frames \(\w+ 75%\) for 1.00% asked"):
        det.calibrate(train, videos=train.names)
    assert measured["videos"] == [0, 1, 2] and det.calibration_["check_false_alarm_rate"] == 0.25
    monkeypatch.setattr(calibration, "cross_validated_false_alarms", lambda *a, **k: (0.05, {0: 0.05}))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        det.calibrate(train, videos=train.names)
    assert not [w for w in said if "disagree" in str(w.message)]  # 4 points above the rate: within the margin


# test.relative: each video's score minus its running floor; test.threshold_over: videos


def test_the_running_floor_by_hand():
    from memad.scoring.baseline import running_floor

    # k = 5 averages of [4, 2, 6, 0] are 4, 3, 4, 3; the floor is the 10% quantile of the last 2 of them
    scores, video = np.array([4.0, 2.0, 6.0, 0.0, 8.0]), np.array([0, 0, 0, 0, 1])
    expected = [4.0, 3.0 + 0.1 * (4.0 - 3.0), 3.0 + 0.1 * (4.0 - 3.0), 3.0 + 0.1 * (4.0 - 3.0), 8.0]
    np.testing.assert_allclose(running_floor(scores, video, 2), expected)


def test_relative_scores_remove_a_video_offset_and_ignore_an_event_shorter_than_the_window():
    from memad.scoring.baseline import relative_scores

    rng = np.random.default_rng(3)
    base = rng.normal(scale=0.1, size=120)
    base[60:75] += 3.0  # a 15-frame event
    video = np.repeat([0, 1], 120)
    rel = relative_scores(np.concatenate([base, base + 40.0]), video, {"relative": 64})
    np.testing.assert_allclose(rel[:120], rel[120:], atol=1e-9)
    # the event stands 3 above its video's normal frames after it as before it
    assert rel[60:75].mean() - rel[30:60].mean() == pytest.approx(3.0, abs=0.2)
    assert np.abs(rel[80:120]).max() < 1.0  # and after it, normal frames sit on the floor again


@pytest.mark.parametrize("scoring", [{"relative": 16}, {"smooth": 3, "relative": 16}, {"smooth": 4}])
def test_the_stream_relative_score_equals_the_offline_one_frame_by_frame(scoring):
    from memad.scoring.baseline import StreamRelative, relative_scores

    scores = np.random.default_rng(4).normal(size=90)
    offline = relative_scores(scores, np.zeros(90, dtype=int), scoring)
    online = StreamRelative(scoring)
    assert [online(float(s)) for s in scores] == offline.tolist()  # the same operations, the same floats
    assert StreamRelative({"relative": 0})(2.5) == 2.5 and StreamRelative({"smooth": 1})(2.5) == 2.5


def test_smoothed_scores_by_hand_and_before_the_floor():
    from memad.scoring.baseline import relative_scores

    scores, video = np.array([0.0, 2.0, 4.0, 10.0, 6.0]), np.array([0, 0, 0, 1, 1])
    # the mean of each video's last 2 scores; video 1 starts again
    np.testing.assert_allclose(relative_scores(scores, video, {"smooth": 2}), [0.0, 1.0, 3.0, 10.0, 8.0])
    # then the floor of those: 5-frame averages of [0, 1, 3] are 0, 0.5, 4/3, their 10% quantile over the
    # last 2 is 0 + 0.1 * 0.5 at frame 1 and 0.5 + 0.1 * (4/3 - 0.5) at frame 2
    rel = relative_scores(scores[:3], video[:3], {"smooth": 2, "relative": 2})
    np.testing.assert_allclose(rel, [0.0, 1.0 - 0.05, 3.0 - (0.5 + 0.1 * (4 / 3 - 0.5))])
    assert relative_scores(scores, video, {}).tolist() == scores.tolist()  # a calibration from before both


def test_smoothing_lowers_the_threshold_of_frame_noise_and_a_sustained_event_reaches_it_more_often():
    from memad.scoring.calibration import _fit, calibrated_scores

    rng = np.random.default_rng(5)
    stats = FrameStats(np.repeat([0, 1], 200), {"distance": rng.normal(scale=0.1, size=400)})
    test = rng.normal(scale=0.1, size=60)
    test[30:50] += 0.2  # a 20-frame event, 2 noise deviations up: within the frame noise's 1% tail
    test = FrameStats(np.zeros(60, dtype=int), {"distance": test})
    found = {}
    for k in (1, 3):
        ranges, threshold, _ = _fit(stats, _Distance(), 0.01, (0.0, 1.0), {"smooth": k})
        found[k] = (calibrated_scores(test, _Distance(), ranges, {"smooth": k})[30:50] >= threshold).mean()
    # averaged over 3 frames the noise is sqrt(3) smaller, so the threshold is nearer the normal level while
    # the event's level stays: most of its frames reach it, where one frame at a time few do
    assert found[3] >= 0.6 and found[3] > found[1] + 0.2


def test_a_threshold_over_videos_holds_for_the_videos_a_frame_threshold_lets_through():
    from memad.scoring.calibration import _fit

    values = np.linspace(0.0, 1.0, 200)
    stats = FrameStats(np.repeat([0, 1], 200), {"distance": np.concatenate([values, 3.0 * values])})
    _, frames, _ = _fit(stats, _Distance(), 0.01, (0.0, 1.0))
    _, videos, scores = _fit(stats, _Distance(), 0.01, (0.0, 1.0), {"threshold_over": "videos"})
    # ranges over both videos: video 1 spans [0, 1]; its own 99% quantile is 0.99
    assert videos == pytest.approx(0.99) and videos >= frames
    assert (scores[200:] >= videos).mean() <= 0.01 + 1 / 200


def test_calibrated_relative_scores_stream_as_they_score_offline():
    det = memad.build("mnad_pred", **tiny(test={"relative": 12, "threshold_over": "videos", "amp": False,
                                                "channels_last": False, "align_inputs": False, "confirm": 0},
                                          train={"max_steps_per_epoch": 3}))
    with pytest.warns(UserWarning, match="a threshold over videos from 3 normal videos:"):
        fit_and_calibrate(det, SPEC)
    assert det.calibration_["relative"] == 12 and det.calibration_["threshold_over"] == "videos"
    video = make_synthetic("testing", (32, 32), 3, 32, SPEC).video(1)
    offline = det.score(video).calibrated
    assert offline[0] == 0.0  # the first frame is its own floor
    streamed = np.array([r.score for r in det.stream(list(video.frames))])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


@pytest.mark.parametrize("relative", [12, 0])
def test_the_threshold_over_videos_also_clears_each_trained_on_videos_own_quantile(relative):
    det = memad.build("mnad_pred", **tiny(test={"relative": relative, "threshold_over": "videos", "reset": "video",
                                                "amp": False, "channels_last": False},
                                          train={"max_steps_per_epoch": 3, "holdout": 0.34}))
    train = make_synthetic("training", (32, 32), 3, 32, SPEC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 1 held-out video: warned, the point here is the others
        det.fit(train)
        det.calibrate(train)
    held = det.calibration_["videos"]
    assert len(held) == 1
    bound = det.calibration_["trained_video_threshold"]
    if not relative:  # absolute scores: trained-on videos score lower than new ones and bound nothing
        assert bound is None
        return
    scores = det.score(train, keep_maps=0)  # every training video, each from the trained memory (reset: video)
    quantiles = [np.quantile(scores.calibrated[scores.video == v], 0.99)
                 for v, name in enumerate(train.names) if name not in held]
    assert len(quantiles) == 2
    assert bound == pytest.approx(max(quantiles))
    assert det.threshold_ >= bound
