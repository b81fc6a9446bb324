"""Every model preset builds, trains a few steps and evaluates on ``synthetic`` at tiny size on CPU."""

import math

import numpy as np
import pytest

import memad

from .conftest import tiny

TEST_VIDEOS, FRAMES_PER_VIDEO = 8, 60  # the synthetic test split
STEPS = {"train": {"max_steps_per_epoch": 3}}
NARROW_MEMAE = {"encoder": {"widths": [8, 16, 32, 32]}, "memory": {"items": 50}}

PRESETS = {
    "mnad_pred": tiny(**STEPS),
    "mnad_recon": tiny(**STEPS),
    "ae": tiny(**STEPS),
    "unet_pred": tiny(**STEPS),
    # 8-frame grayscale clips (the preset's 16 need 16 frames per clip; 8 keeps it quick)
    "memae": tiny(**STEPS, data={"frames": 8}, **NARROW_MEMAE),
    "memae2d": tiny(**STEPS, **NARROW_MEMAE),
    # the preset's timm ResNet-18 cut after its second stage (128 channels at 1/8); batched keeps it quick
    "mnad_pred_resnet18": {**tiny(**STEPS, test={"mode": "batched"}), "encoder": {"out_indices": [0, 1, 2]}},
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_trains_and_evaluates(preset):
    det = memad.build(preset, **PRESETS[preset])
    det.fit("synthetic")
    assert len(det.history_) == 1 and math.isfinite(det.history_[0]["loss"])
    scores = det.score("synthetic")
    clip = det.clip_length
    assert len(scores.scores) == TEST_VIDEOS * (FRAMES_PER_VIDEO - clip + 1)
    # a clip's score goes to its last frame (MemAE: its centre frame, as the official code), so the frames
    # before that one in the first clip, and after it in the last, are unscored
    offset = clip // 2 if preset == "memae" else clip - 1
    assert det.score_offset == offset
    first = scores.frame[scores.video == 0]
    assert first.min() == offset and first.max() == FRAMES_PER_VIDEO - clip + offset
    assert np.isfinite(scores.scores).all()
    metrics = scores.metrics()
    for key in ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc"):
        assert metrics[key] is not None and 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["fps"] > 0


def test_presets_come_from_memad():
    listed = memad.list_components("preset")
    for preset in PRESETS:
        assert listed[preset].startswith("memad "), (preset, listed[preset])


def test_new_components_are_listed_with_their_distribution():
    listed = memad.list_components()
    expected = {"memory": ["memae"], "encoder": ["memae3d", "memae2d", "timm"], "decoder": ["memae3d", "memae2d"]}
    for kind, names in expected.items():
        for name in names:
            assert listed[kind][name].startswith("memad "), (kind, name, listed[kind][name])
