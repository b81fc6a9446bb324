"""The ``contrast`` signal and scorer: the worst region's error over the frame's, the same offline, streamed
and exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.interfaces import FrameStats
from memad.scoring.export import export
from memad.scoring.exported import load_exported
from memad.scoring.step import local_contrast

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


def test_a_region_holding_all_the_error_scores_log_of_the_frame_over_the_region():
    # the error in one 16 x 16 corner of a 64 x 64 frame: the worst 16 x 16 window holds it all, so its mean
    # is 16 times the frame's; a quarter-frame stripe of 16 x 64 gives 4 times
    err = torch.zeros(2, 1, 64, 64)
    err[0, :, :16, :16] = 0.2
    err[1, :, :16, :] = 0.2
    np.testing.assert_allclose(local_contrast(err).numpy(), np.log([16.0, 4.0]), atol=1e-5)


@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (8, 8)])
def test_contrast_ignores_the_error_scale_and_is_zero_for_an_even_error(hw):
    # another camera's gain scales every pixel's error alike: the contrast does not move; an error spread
    # evenly over the frame (noise, a change of light) has none
    torch.manual_seed(0)
    err = torch.rand(3, 2, *hw) ** 4
    np.testing.assert_allclose(local_contrast(7.5 * err).numpy(), local_contrast(err).numpy(), atol=1e-5)
    assert (local_contrast(err) > 0).all()
    np.testing.assert_allclose(local_contrast(torch.full((2, 1, *hw), 0.03)).numpy(), 0.0, atol=1e-6)


def test_the_contrast_scorer_mixes_in_the_distance_below_weight_one():
    stats = FrameStats(np.zeros(3, dtype=int), {"contrast": np.array([1.0, 2.0, 3.0]),
                                                "distance": np.array([0.3, 0.1, 0.2])})
    scorer = memad.get_registry().get("scorer", "contrast").obj
    np.testing.assert_allclose(scorer()(stats), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(scorer(weight=0.5)(stats), [0.5, 0.25, 0.75])  # halves of [0, .5, 1] and [1, 0, .5]
    with pytest.raises(ValueError, match="scorer.weight"):
        scorer(weight=1.5)


def _calibrated() -> memad.Detector:
    det = memad.build("mnad_pred", **tiny(scorer={"name": "contrast"}, memory={"gate": 0.05},
                                          test={"reset": "video", "amp": False, "channels_last": False},
                                          train={"max_steps_per_epoch": 3}))
    fit_and_calibrate(det, SPEC)
    return det


@pytest.mark.filterwarnings("ignore:a false-alarm rate of:UserWarning")  # 26 calibration frames: the point is parity
def test_contrast_scores_stream_and_export_as_eval_scores_them(tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install -e .[test])")
    det = _calibrated()
    assert "contrast" in det.calibration_["signals"]
    video = make_synthetic("testing", (32, 32), 3, 32, SPEC).video(1)
    offline = det.score(video).calibrated
    assert np.ptp(offline) > 0
    streamed = np.array([r.score for r in det.stream(list(video.frames))])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    export(det, tmp_path / "contrast.onnx", "onnx", frames=30)
    model = load_exported(tmp_path / "contrast.onnx")
    assert "contrast" in model.step(video.frames[:5].numpy()[None])
    np.testing.assert_allclose(model.scores(video.frames.numpy()), offline, atol=1e-4, rtol=0)


def test_memad_calibrate_with_the_contrast_scorer_recalibrates_without_a_stale_warning(tmp_path, recwarn):
    from memad.cli import main

    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 2}))
    fit_and_calibrate(det, SPEC)
    path = det.save(tmp_path / "pred.pt")
    recwarn.clear()
    assert main(["calibrate", str(path), "--data", "synthetic",
                 "--set", "scorer.name=contrast", "--out", str(tmp_path / "contrast.pt")]) == 0
    assert not [w for w in recwarn if "stored calibration" in str(w.message)]  # calibrate replaces it: no advice
    again = memad.load(tmp_path / "contrast.pt")
    assert again.config["scorer"]["name"] == "contrast" and "contrast" in again.calibration_["signals"]
    assert again.threshold_ != det.threshold_
