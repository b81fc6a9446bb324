"""data.normalise: each clip scaled by its input frames' own mean and spread before the network sees it."""

from __future__ import annotations

import pytest
import torch

import memad
from memad.frames import CLIP_SPREAD, clip_input, normalise_clips

from .conftest import tiny


def test_a_clip_is_scaled_by_its_input_frames_statistics_by_hand():
    # input frames: values 0 and 0.2 in equal parts -> mean 0.1, spread (unbiased std over 8 values) ~0.1069
    inputs = torch.tensor([0.0, 0.2] * 4).reshape(1, 2, 1, 2, 2)
    target = torch.full((1, 1, 1, 2, 2), 0.3)
    out = normalise_clips(torch.cat([inputs, target], dim=1), frames=2)
    spread = torch.tensor([0.0, 0.2] * 4).std()
    torch.testing.assert_close(out[0, 0, 0, 0, 0], (0.0 - 0.1) * CLIP_SPREAD / spread)
    # the target frame is scaled with the inputs' statistics, not its own: (0.3 - 0.1) * 0.35 / 0.1069 = 0.655
    torch.testing.assert_close(out[0, 2], torch.full((1, 2, 2), (0.3 - 0.1) * CLIP_SPREAD / float(spread)))


@pytest.mark.parametrize("task,frames", [("prediction", 4), ("reconstruction", 1)])
def test_a_change_of_light_level_and_contrast_leaves_the_model_input_and_target_unchanged(task, frames):
    clip = torch.rand(2, frames + (task == "prediction"), 3, 8, 8) * 0.8 - 0.4
    x, y = clip_input(clip, frames, task, normalise="clip")
    x2, y2 = clip_input(0.6 * clip + 0.3, frames, task, normalise="clip")  # a dimmer, brighter-lit camera
    torch.testing.assert_close(x, x2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)
    raw, _ = clip_input(clip, frames, task, normalise="none")
    raw2, _ = clip_input(0.6 * clip + 0.3, frames, task, normalise="none")
    assert not torch.allclose(raw, raw2)  # as read, the light level is in the input


def test_a_flat_clip_stays_flat_and_every_value_stays_in_the_model_range():
    flat = torch.full((1, 5, 1, 4, 4), 0.7)
    torch.testing.assert_close(normalise_clips(flat, 4), torch.zeros_like(flat), atol=1e-4, rtol=0)
    spiky = torch.zeros(1, 5, 1, 4, 4)
    spiky[0, 4, 0, 0, 0] = 1.0  # a target far outside the inputs' spread is clipped, not blown up
    out = normalise_clips(spiky + 0.01 * torch.randn_like(spiky), 4)
    assert out.abs().max() <= 1.0


def test_the_detector_feeds_normalised_clips_by_default_and_the_frames_as_read_when_asked():
    clip = torch.rand(1, 5, 3, 32, 32) * 0.5
    normalised, _ = memad.build("mnad_pred", **tiny()).split_clip(clip)
    as_read, _ = memad.build("mnad_pred", **tiny(data={"normalise": "none"})).split_clip(clip)
    assert abs(float(normalised.mean())) < 1e-4 and float(as_read.mean()) > 0.2
