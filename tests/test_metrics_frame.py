"""Frame AUROC: frame_metrics unchanged, the macro (per-video) AUROC and its one-class treatments by
hand, per-scene AUROC and ShanghaiTech scene names."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from memad.errors import ConfigError, DataError
from memad.metrics import (
    frame_auroc_macro,
    frame_auroc_per_scene,
    frame_metrics,
    shanghaitech_scene,
    shanghaitech_scenes,
)

# v0 all anomalous, v1 all normal, v2 mixed (its anomalous frame scores lowest)
SCORES = np.array([.2, .5, .9, .3, .6, .1, .8, .4])
LABELS = np.array([1, 1, 1, 0, 0, 1, 0, 0])
VIDEO = np.array([0, 0, 0, 1, 1, 2, 2, 2])


def test_macro_one_class_treatments_by_hand():
    # v0 padded: normal {.2}, anomalous {.2, .5, .9, .9}: (0.5 + 3) / 4
    # v1 padded: normal {.3, .3, .6}, anomalous {.6}: (1 + 1 + 0.5) / 3
    # v2 plain: 0; padded: normal {.1, .8, .4}, anomalous {.1, .8}: (0.5 + 0 + 0 + 1 + 0.5 + 1) / 6
    v0, v1 = 3.5 / 4, 2.5 / 3
    assert frame_auroc_macro(SCORES, LABELS, VIDEO) == pytest.approx((v0 + v1 + 0.5) / 3)
    assert frame_auroc_macro(SCORES, LABELS, VIDEO, single_class="pad") == pytest.approx((v0 + v1 + 0.5) / 3)
    # pad_single: v0 gets a normal frame at .2: (0.5 + 1 + 1) / 3; v1 an anomalous one at .6: (1 + 0.5) / 2
    assert frame_auroc_macro(SCORES, LABELS, VIDEO, single_class="pad_single") == pytest.approx(
        (2.5 / 3 + 1.5 / 2 + 0.0) / 3)
    assert frame_auroc_macro(SCORES, LABELS, VIDEO, single_class="skip") == 0.0


def test_padding_is_the_zero_one_padding_of_min_max_normalised_scores():
    # the public scripts: per-video min-max normalisation, then a normal frame scored 0 and an anomalous one scored 1
    rng = np.random.default_rng(0)
    s, y, v = rng.random(60) * 7 + 3, (rng.random(60) < 0.4).astype(int), np.repeat(np.arange(4), 15)
    y[v == 3] = 1
    ref = []
    for k in range(4):
        z = (s[v == k] - s[v == k].min()) / np.ptp(s[v == k])
        ref.append(roc_auc_score(np.r_[0, y[v == k], 1], np.r_[0, z, 1]))
    assert frame_auroc_macro(s, y, v) == pytest.approx(np.mean(ref))


def test_frame_metrics_is_unchanged():
    rng = np.random.default_rng(1)
    s, y, v = rng.random(90), (rng.random(90) < 0.3).astype(int), np.repeat(np.arange(6), 15)
    y[v == 2] = 0
    m = frame_metrics(s, y, v)
    assert set(m) == {"frame_auroc", "frame_auroc_macro", "aupr", "eer"}
    assert m["frame_auroc"] == pytest.approx(roc_auc_score(y, s))
    per_video = [roc_auc_score(y[v == k], s[v == k]) for k in range(6) if k != 2]
    assert m["frame_auroc_macro"] == pytest.approx(np.mean(per_video))
    assert m["frame_auroc_macro"] == frame_auroc_macro(s, y, v, single_class="skip")


def test_per_scene_auroc_pools_each_scenes_videos():
    # scene "01": videos 0 and 2, scene "02": video 1 (one class: no AUROC)
    scenes = {0: "01", 1: "02", 2: "01"}
    sel = VIDEO != 1
    expected = roc_auc_score(LABELS[sel], SCORES[sel])
    assert frame_auroc_per_scene(SCORES, LABELS, VIDEO, scenes) == {"01": pytest.approx(expected), "02": None}
    per_frame = [scenes[v] for v in VIDEO]
    assert frame_auroc_per_scene(SCORES, LABELS, VIDEO, per_frame) == frame_auroc_per_scene(
        SCORES, LABELS, VIDEO, scenes)
    with pytest.raises(DataError, match="video 2"):
        frame_auroc_per_scene(SCORES, LABELS, VIDEO, {0: "01", 1: "02"})
    with pytest.raises(DataError, match="one scene per frame"):
        frame_auroc_per_scene(SCORES, LABELS, VIDEO, ["01", "02"])


def test_shanghaitech_scene_names():
    assert shanghaitech_scene("01_0014") == "01"
    assert shanghaitech_scene("testing/frames/12_0151") == "12"
    assert shanghaitech_scenes(["01_0014", "01_0015", "04_0001"]) == {0: "01", 1: "01", 2: "04"}
    with pytest.raises(DataError, match="'video1'"):
        shanghaitech_scene("video1")


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="single_class"):
        frame_auroc_macro(SCORES, LABELS, VIDEO, single_class="drop")
    with pytest.raises(DataError, match="labels"):
        frame_auroc_macro(SCORES, LABELS * 2, VIDEO)
    with pytest.raises(DataError, match="one entry per frame"):
        frame_auroc_macro(SCORES, LABELS[:-1], VIDEO)
