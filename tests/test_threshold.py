"""Deployment thresholds: percentile/contamination on hand-computable scores, 0/1 predictions,
precision/recall/F1, and Detector.fit_threshold/predict wired to the detector's own scorer."""

import numpy as np
import pytest
import torch

import memad
from memad.data import VideoSet
from memad.metrics import precision_recall_f1
from memad.scoring.threshold import predict_labels, resolve_percentile, threshold_from_scores
from tests.conftest import tiny


def test_percentile_interpolates_between_normal_scores():
    # numpy's linear rule: position 0.9 * (10 - 1) = 8.1 between the sorted scores 8 and 9
    assert threshold_from_scores(np.arange(10.0), percentile=90) == pytest.approx(8.1)
    assert threshold_from_scores(np.array([3.0, 1.0, 2.0]), percentile=50) == 2.0
    assert threshold_from_scores(np.array([5.0, 7.0]), percentile=100) == 7.0


def test_contamination_is_the_complementary_percentile():
    scores = np.random.default_rng(0).normal(size=200)
    assert threshold_from_scores(scores, contamination=0.05) == threshold_from_scores(scores, percentile=95)
    assert resolve_percentile() == 99.0


@pytest.mark.parametrize("kwargs, match", [
    ({"percentile": 90, "contamination": 0.1}, "not both"),
    ({"percentile": 0}, "percentile"),
    ({"percentile": 101}, "percentile"),
    ({"contamination": 1.0}, "contamination"),
    ({"contamination": -0.1}, "contamination"),
])
def test_bad_threshold_settings_are_named(kwargs, match):
    with pytest.raises(memad.ConfigError, match=match):
        threshold_from_scores(np.arange(5.0), **kwargs)


def test_non_finite_normal_scores_are_refused():
    with pytest.raises(memad.NumericalError, match="index 2"):
        threshold_from_scores(np.array([0.1, 0.2, np.nan]))


def test_scores_at_the_threshold_are_anomalous():
    assert predict_labels(np.array([0.2, 0.5, 0.7, 0.49]), 0.5).tolist() == [0, 1, 1, 0]
    with pytest.raises(memad.ConfigError, match="fit_threshold"):
        predict_labels(np.array([0.1]), None)


def test_precision_recall_f1_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    predicted = np.array([1, 1, 0, 1, 0, 0, 0, 0])  # tp 2, fp 1, fn 1
    m = precision_recall_f1(labels, predicted)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["flagged"] == 3
    assert precision_recall_f1(labels, np.zeros(8))["f1"] == 0.0  # nothing flagged: 0, not NaN


@memad.register("scorer", "test_threshold_frame_order")
class FrameOrder(memad.Scorer):
    """Scores each call's frames 0, 1, 2, ... so that thresholds can be worked out by hand."""

    def __call__(self, stats):
        return np.arange(len(stats), dtype=np.float64)


def _videos(lengths, seed):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (sum(lengths), 3, 32, 32), generator=g, dtype=torch.uint8)
    return VideoSet(frames, [f"v{i}" for i in range(len(lengths))], list(lengths), source="test")


def test_detector_threshold_comes_from_normal_frames_and_survives_save(tmp_path):
    det = memad.build("ae", **tiny(scorer={"name": "test_threshold_frame_order"}))
    normal = _videos([10, 10], seed=0)  # ae scores every frame: scores 0..19
    det.fit_threshold(normal, percentile=50)
    assert det.threshold_ == pytest.approx(9.5)
    test = _videos([15], seed=1)  # scores 0..14: 10..14 are at or above 9.5
    assert det.predict(test).tolist() == [0] * 10 + [1] * 5
    assert det.predict(det.score(test)).tolist() == det.predict(test).tolist()
    det.fit_threshold(normal, contamination=0.25)  # 75th percentile of 0..19: 14.25
    assert det.threshold_ == pytest.approx(14.25)
    again = memad.load(det.save(tmp_path / "ae.pt"))
    assert again.threshold_ == pytest.approx(14.25)
    assert again.predict(test).sum() == 0


def test_predict_without_threshold_and_per_video_scores_warn():
    det = memad.build("ae", **tiny())
    with pytest.raises(memad.ConfigError, match="fit_threshold"):
        det.predict(_videos([4], seed=2))
    with pytest.warns(UserWarning, match="normalise"):
        det.fit_threshold(_videos([6, 6], seed=3))
    assert 0.0 <= det.threshold_ <= 1.0  # per-video min-max scores live in [0, 1]


def test_conformal_threshold_by_hand_and_its_guarantee():
    from memad.scoring.threshold import conformal_threshold

    # n = 9, rate 0.2: ceil(10 * 0.8) = 8 -> the 8th smallest; the plain 80th percentile (7.4) is lower.
    scores = np.array([9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0])
    assert conformal_threshold(scores, 0.2) == 8.0
    assert threshold_from_scores(scores, contamination=0.2) == pytest.approx(7.4)
    # The guarantee, by simulation: over many calibrations on 30 normal scores, a new normal score
    # from the same distribution reaches the threshold at most 10% of the time on average.
    rng = np.random.default_rng(0)
    hits = [rng.normal() >= conformal_threshold(rng.normal(size=30), 0.1) for _ in range(4000)]
    assert np.mean(hits) <= 0.1 + 0.015


def test_conformal_threshold_with_too_few_frames_warns_and_takes_the_largest():
    from memad.scoring.threshold import conformal_threshold

    with pytest.warns(UserWarning, match=r"0.01 needs at least 99 normal frames .* got 20"):
        assert conformal_threshold(np.arange(20.0), 0.01) == 19.0
    with pytest.raises(Exception, match="contamination"):
        conformal_threshold(np.arange(5.0), 1.5)
    with pytest.raises(memad.ConfigError, match="needs a rate above 0"):
        conformal_threshold(np.arange(5.0), 0.0)
