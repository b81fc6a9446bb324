"""The bootstrap interval of the frame AUROC over videos: its weighted AUROC against sklearn, that it
holds the point estimate, is reproducible, collapses on identical videos, and narrows with more videos."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from memad.errors import ConfigError
from memad.metrics import frame_auroc_ci95, weighted_auroc


def _videos(n: int, seed: int, frames: int = 40):
    """``n`` test videos: an anomalous stretch in most, scores separating the classes imperfectly,
    each video with its own offset (frames of a video are correlated)."""
    rng = np.random.default_rng(seed)
    s, y, v = [], [], []
    for k in range(n):
        lab = np.zeros(frames, int)
        if rng.random() < 0.8:
            a = int(rng.integers(5, frames - 10))
            lab[a:a + 8] = 1
        s.append(rng.normal(size=frames) + 1.2 * lab + rng.normal(scale=0.7))
        y.append(lab)
        v.append(np.full(frames, k))
    return np.concatenate(s), np.concatenate(y), np.concatenate(v)


def test_weighted_auroc_is_sklearns_with_sample_weights():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=300), 1)  # ties
    y, w = rng.random(300) < 0.3, rng.integers(0, 4, 300)
    assert weighted_auroc(s, y, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w))


def test_interval_holds_the_point_estimate_and_is_reproducible():
    s, y, v = _videos(20, seed=1)
    low, high = frame_auroc_ci95(s, y, v)
    assert low < roc_auc_score(y, s) < high
    assert frame_auroc_ci95(s, y, v) == [low, high]
    assert frame_auroc_ci95(s, y, v, seed=1) != [low, high]
    narrow = frame_auroc_ci95(s, y, v, level=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_identical_videos_give_a_zero_width_interval():
    # every draw holds copies of the same video: the pooled AUROC never changes
    s, y = np.array([.1, .7, .4, .9, .2]), np.array([0, 1, 0, 1, 0])
    point = roc_auc_score(y, s)
    low, high = frame_auroc_ci95(np.tile(s, 5), np.tile(y, 5), np.repeat(np.arange(5), 5), resamples=50)
    assert low == pytest.approx(point) and high == pytest.approx(point)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000))
def test_the_interval_narrows_with_more_videos(seed):
    # the same videos copied 8 times (as new videos): same pooled AUROC, 8 times the videos,
    # a width about sqrt(8) times smaller
    s, y, v = _videos(8, seed)
    few = frame_auroc_ci95(s, y, v, resamples=300)
    many = frame_auroc_ci95(np.tile(s, 8), np.tile(y, 8), np.concatenate([v + 8 * k for k in range(8)]),
                            resamples=300)
    assert many[1] - many[0] < 0.7 * (few[1] - few[0])


def test_more_videos_of_the_same_kind_narrow_the_interval_on_average():
    widths = {n: np.mean([np.diff(frame_auroc_ci95(*_videos(n, seed), resamples=200))[0] for seed in range(5)])
              for n in (8, 64)}
    assert widths[64] < 0.6 * widths[8]


def test_undefined_cases_and_bad_settings():
    assert frame_auroc_ci95(np.array([.1, .2]), np.array([0, 0]), np.array([0, 1])) is None
    assert frame_auroc_ci95(np.array([.1, .2]), np.array([0, 1]), np.array([0, 0])) is None
    with pytest.raises(ConfigError, match="resamples"):
        frame_auroc_ci95(np.array([.1, .2]), np.array([0, 1]), np.array([0, 1]), resamples=0)
