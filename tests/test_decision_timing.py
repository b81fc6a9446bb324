"""test.align_inputs and test.confirm: a prediction model's own signals moved to the frames they describe,
a frame flagged only when the next frames agree; offline scoring, calibration and streams agree."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.interfaces import FrameStats
from memad.scoring.baseline import StreamDecisions, confirmed, inputs_aligned, relative_scores

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


def test_confirmed_by_hand():
    scores = np.array([1.0, 5.0, 4.0, 0.0, 6.0, 7.0, 9.0, 3.0])
    video = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    # the lowest of each frame's score and the next 2 of its video (fewer at a video's end)
    assert confirmed(scores, video, 2).tolist() == [1.0, 0.0, 0.0, 0.0, 6.0, 3.0, 3.0, 3.0]
    assert confirmed(scores, video, 0).tolist() == scores.tolist()


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_a_confirmed_frame_is_one_whose_next_frames_all_reach_the_threshold(frames):
    rng = np.random.default_rng(frames)
    scores = rng.normal(size=300)
    video = np.repeat([0, 1, 2], 100)
    over = scores >= 0.5
    expected = [bool(over[i:min(i + frames + 1, (i // 100 + 1) * 100)].all()) for i in range(300)]
    assert (confirmed(scores, video, frames) >= 0.5).tolist() == expected


def test_inputs_aligned_moves_only_the_networks_own_signals_and_only_within_a_video():
    video = np.array([0, 0, 0, 1, 1])
    signals = {"mse": np.arange(5.0), "psnr": np.arange(5.0) + 10, "contrast": np.arange(5.0) + 20,
               "distance": np.arange(5.0) + 30, "spread": np.arange(5.0) + 40}
    out = inputs_aligned(FrameStats(video, signals), {"align_inputs": True})
    for name in ("mse", "psnr", "contrast"):  # from the output and the scored frame: they stay
        assert out[name].tolist() == signals[name].tolist()
    assert out["distance"].tolist() == [31.0, 32.0, 32.0, 34.0, 34.0]  # the next frame's; a video's last keeps its own
    assert out["spread"].tolist() == [41.0, 42.0, 42.0, 44.0, 44.0]
    same = inputs_aligned(FrameStats(video, signals), {})  # a calibration from before: as it was
    assert same["distance"].tolist() == signals["distance"].tolist()


class _Mixed(memad.Scorer):
    requires = ("psnr", "distance")

    def __call__(self, stats):
        return 0.6 * (1.0 - stats.normalised("psnr")) + 0.4 * stats.normalised("distance")


@pytest.mark.parametrize("scoring", [
    {"align_inputs": True, "confirm": 2, "smooth": 3, "relative": 16},
    {"align_inputs": True, "confirm": 0},
    {"align_inputs": False, "confirm": 3, "relative": 8},
    {},
])
def test_stream_decisions_equal_the_offline_ones_frame_by_frame(scoring):
    rng = np.random.default_rng(7)
    video = np.repeat([0, 1], [40, 25])
    stats = FrameStats(video, {"psnr": rng.normal(30, 1, 65), "distance": rng.normal(0.1, 0.02, 65),
                               "mse": rng.random(65)})
    ranges = {"psnr": [28.0, 32.0], "distance": [0.05, 0.15], "mse": [0.0, 1.0]}
    scorer = _Mixed()
    offline = relative_scores(scorer(inputs_aligned(stats, scoring).with_calibration(ranges)), video, scoring)
    online = []
    for v in (0, 1):  # each video a stream of its own
        decisions = StreamDecisions(scoring, lambda s: float(scorer(s)[0]))
        for i in np.flatnonzero(video == v):
            one = FrameStats(np.zeros(1, dtype=np.int64), {k: x[i:i + 1] for k, x in stats.signals.items()},
                             calibration=ranges)
            online += decisions.push(one, int(i))
        online += decisions.finish()
    assert [i for i, _ in online] == list(range(65))  # every frame, in order, none lost at the end
    assert [s for _, s in online] == offline.tolist()  # the same operations, the same floats


def test_a_short_tail_over_the_threshold_after_an_event_does_not_flag_with_confirm():
    scores = np.zeros(60)
    scores[20:35] = 5.0  # an event of 15 frames
    scores[35:37] = 1.5  # the prediction's tail: 2 frames over the threshold after the event's last labelled frame
    video = np.zeros(60, dtype=int)
    flagged = confirmed(scores, video, 2) >= 1.0
    assert not flagged[35:].any() and flagged[20:33].all()  # the tail not; the event's first 13 frames
    assert (scores >= 1.0)[35:37].all()  # each frame on its own: both tail frames flagged


def _calibrated(preset: str, **test):
    det = memad.build(preset, **tiny(test={"amp": False, "channels_last": False, **test},
                                     train={"max_steps_per_epoch": 3}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few tiny videos: the calibration's size warnings
        fit_and_calibrate(det, SPEC)
    return det


def test_the_calibration_records_both_and_aligns_only_prediction_models():
    pred = _calibrated("mnad_pred")
    assert pred.calibration_["align_inputs"] is True and pred.calibration_["confirm"] == 2
    recon = _calibrated("mnad_recon")  # the network reads the frame it scores: nothing to move
    assert recon.calibration_["align_inputs"] is False and recon.calibration_["confirm"] == 2
    off = _calibrated("mnad_pred", align_inputs=False, confirm=0)
    assert off.calibration_["align_inputs"] is False and off.calibration_["confirm"] == 0


def test_a_prediction_models_calibrated_scores_take_the_next_clips_distance():
    det = _calibrated("mnad_pred", smooth=0, relative=0, confirm=0)
    video = make_synthetic("testing", (32, 32), 3, 32, SPEC).video(0)
    scored = det.score(video, keep_maps=0)
    ranges = det.calibration_["signals"]
    d, p = scored.stats.distance, scored.stats["psnr"]
    g = lambda x, name: (x - ranges[name][0]) / (ranges[name][1] - ranges[name][0])  # noqa: E731
    weight = det.config["scorer"]["weight"]
    expected = 1.0 - (weight * g(p, "psnr") + (1 - weight) * (1.0 - g(np.append(d[1:], d[-1]), "distance")))
    np.testing.assert_allclose(scored.calibrated, expected, rtol=1e-9, atol=1e-12)
