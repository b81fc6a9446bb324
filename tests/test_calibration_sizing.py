"""train.holdout sized to the false-alarm rate: what the held-out videos lack is said before training."""

from __future__ import annotations

import warnings

import pytest

import memad
from memad.cli import main
from memad.data.clips import holdout_videos
from memad.scoring.calibration import holdout_shortfall

from .conftest import tiny
from .test_cli import TINY_SET


def test_enough_held_out_frames_and_videos_say_nothing():
    # 6 videos of 60 frames, clips of 5: train.holdout=0.25 keeps 2 videos of 56 scored frames = 112 >= 99
    assert holdout_videos(6, 0.25) == [1, 4]
    assert holdout_shortfall([60] * 6, 5, 0.25, 0.01) is None


def test_a_rate_the_frames_cannot_support_names_the_holdout_that_can():
    # 0.5% needs 1 / 0.005 - 1 = 199 frames: 0.5 keeps 3 videos (168), 0.6 keeps 4 (224)
    said = holdout_shortfall([60] * 6, 5, 0.25, 0.005)
    assert "keeps 2 videos (112 scored frames)" in said and "at least 199 frames" in said
    assert "train.holdout=0.6 would keep 4 videos (224 frames)" in said and "memad calibrate" in said


def test_a_threshold_over_videos_needs_four_videos():
    said = holdout_shortfall([200] * 8, 5, 0.25, 0.01, "videos")
    assert "keeps 2 videos" in said and "4 videos (test.threshold_over=videos)" in said
    assert "train.holdout=0.45 would keep 4 videos" in said  # round(8 x 0.45) = 4; 0.05 steps


def test_with_relative_scores_the_trained_on_videos_count_towards_a_threshold_over_videos():
    # scores relative to their floor: every training video bounds the threshold, so 2 held out of 8 will do
    assert holdout_shortfall([200] * 8, 5, 0.25, 0.01, "videos", trained_bound=True) is None
    # the cross-validation still needs 2 held-out videos: round(8 x 0.1) = 1, round(8 x 0.15) = 1, 0.2 keeps 2
    said = holdout_shortfall([200] * 8, 5, 0.1, 0.01, "videos", trained_bound=True)
    assert "keeps 1 video (196 scored frames)" in said and "2 held-out videos" in said
    assert "train.holdout=0.2 would keep 2 videos" in said
    # 3 normal videos in all cannot make 4, however many are held out
    said = holdout_shortfall([200] * 3, 5, 0.5, 0.01, "videos", trained_bound=True)
    assert "4 normal videos in all" in said and "the training data has 3" in said and "would not be enough" in said


def test_when_no_holdout_is_enough_it_says_to_calibrate_on_the_cameras_footage():
    said = holdout_shortfall([30] * 3, 5, 0.25, 0.01)
    assert "keeps 1 video (26 scored frames)" in said and "would not be enough" in said


def test_train_warns_before_training(tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"train\.holdout=0\.25 keeps .* needs at least 999 frames"):
        assert main(["train", "ae", "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path / "r"),
                     "--false-alarm-rate", "0.001", *TINY_SET]) == 0


def _said(caught, text: str) -> int:
    return sum(text in str(w.message) for w in caught)


def test_the_shortfall_is_said_once_before_training_not_again_at_calibration(tmp_path):
    # synthetic holds 8 training videos: train.holdout=0.25 keeps 2, a threshold over videos (the default) of
    # scores on their own (not relative to a floor, so the trained-on videos do not bound it) wants 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "ae", "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path / "r"),
                     *TINY_SET, "--set", "test.relative=0"]) == 0
    assert _said(caught, "4 videos (test.threshold_over=videos)") == 1
    assert _said(caught, "a threshold over videos from") == 0


def test_calibrating_without_the_check_before_training_still_warns():
    det = memad.build("ae", **tiny(test={"relative": 0}))
    det.fit("synthetic", epochs=1)
    assert len(det.holdout_videos_) == 2 and det.holdout_warning_ is None
    with pytest.warns(UserWarning, match="a threshold over videos from 2 normal videos"):
        det.calibrate("synthetic")


def test_relative_scores_are_bounded_by_every_training_video_and_not_warned_about():
    det = memad.build("ae", **tiny())  # test.relative > 0 by default
    det.fit("synthetic", epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calibration = det.calibrate("synthetic").calibration_
    assert _said(caught, "a threshold over videos from") == 0
    assert len(calibration["videos"]) == 2 and calibration["trained_video_threshold"] is not None
    assert calibration["threshold"] >= calibration["trained_video_threshold"]


def test_other_footage_named_like_the_held_out_videos_is_calibrated_on_whole(tmp_path):
    # scenes:camera=1 names its videos 01..04 as the training split does: by name alone, only the two
    # held-out names would be taken from a camera's own footage
    data = "scenes:train=4,test=2,frames=20,test_frames=40"
    det = memad.build("ae", **tiny())
    det.fit(data, epochs=1)
    held = det.holdout_videos_
    assert len(held) == 1 and set(det.holdout_fingerprints_) == set(held)
    loaded = memad.load(det.save(tmp_path / "checkpoint.pt"))
    assert loaded.holdout_fingerprints_ == det.holdout_fingerprints_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few frames, one video: the point is which videos
        loaded.calibrate(data)
        assert loaded.calibration_["videos"] == held and loaded.calibration_["videos_from"] == "held out of training"
        loaded.calibrate(data.replace("test=2,", "test=2,camera=1,"))
    assert loaded.calibration_["videos"] == ["01", "02", "03", "04"]
    assert loaded.calibration_["videos_from"].startswith("all (not the training data")


def test_the_check_before_training_follows_the_test_config():
    from memad.scoring.calibration import warn_holdout_shortfall

    relative = memad.build("ae", **tiny())  # relative scores: 2 held out of 8 normal videos will do
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_holdout_shortfall(relative, [200] * 8, 0.01)
    assert getattr(relative, "holdout_warning_", None) is None
    alone = memad.build("ae", **tiny(test={"relative": 0}))  # scores on their own: 4 held out needed
    with pytest.warns(UserWarning, match="needs at least 99 frames and 4 videos"):
        warn_holdout_shortfall(alone, [200] * 8, 0.01)
    assert "train.holdout=0.45 would keep 4 videos" in alone.holdout_warning_
