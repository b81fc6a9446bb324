"""dmad_pred exported (ONNX, TorchScript): the file's calibrated scores equal PyTorch's streamed scores within
1e-4, on the export's own check sequence and on another video (tiny model, 32 px)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.scoring.export import export
from memad.scoring.exported import load_exported

from .conftest import tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))


@pytest.fixture(scope="module")
def dmad():
    # fp32 and the default layout, as the exported step computes
    det = memad.build("dmad_pred", **tiny(train={"max_steps_per_epoch": 4, "seed": 0},
                                          test={"amp": False, "channels_last": False}))
    train = make_synthetic("training", (32, 32), 3, 32, SPEC)
    det.fit(train)
    with pytest.warns(UserWarning, match="needs at least 99 normal frames"):
        det.calibrate(train)
    return det


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="no onnx extra")),
                                 "torchscript"])
def test_dmad_pred_export_scores_equal_pytorch(dmad, fmt, tmp_path):
    report = export(dmad, tmp_path / f"dmad.{fmt}", fmt, frames=30)
    assert report["max_abs_score_difference"] <= 1e-4 and report["scores_checked"] == 26
    model = load_exported(tmp_path / f"dmad.{fmt}")
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    frames = test.video(1).frames
    torch_scores = np.array([r.score for r in dmad.stream(list(frames))])
    exported = model.scores(frames.numpy())
    assert len(exported) == len(torch_scores) == 26
    np.testing.assert_allclose(exported, torch_scores, atol=1e-4, rtol=0)
    out = model.step(frames[:5].numpy()[None])
    assert {"deformation", "recon_l1", "gradient_error", "distance", "map"} <= set(out)


def test_dmad_pred_streamed_scores_equal_its_offline_calibrated_scores(dmad):
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    offline = dmad.score(test)
    streamed = np.array([r.score for r in dmad.stream(list(test.video(1).frames))])
    np.testing.assert_allclose(streamed, offline.calibrated[offline.video == 1], atol=1e-5, rtol=0)
