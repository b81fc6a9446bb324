"""memad export: ONNX and TorchScript parity with PyTorch (memory state carried through the file), the
check on load refusing tampered or mismatched files, and memad detect running an export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import memad
from memad.cli import main
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.scoring.export import export
from memad.scoring.exported import TAG, load_exported

from .conftest import fit_and_calibrate, tiny

onnx = pytest.importorskip("onnx", reason="the export extra is not installed (pip install -e .[test])")
pytest.importorskip("onnxruntime")
SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


def _calibrated(preset: str, seed: int = 0, **extra):
    det = memad.build(preset, **tiny(train={"max_steps_per_epoch": 4, "seed": seed}, **extra))
    fit_and_calibrate(det, SPEC)
    return det


@pytest.fixture(scope="module")
def pred():
    # Scored in fp32 and the default layout, as the exported step computes (test.amp "auto" would
    # score in bf16 on a CPU with AMX: a rounding difference that is not the export's).
    # gate 0.15: above this barely trained model's regular scores on normalised clips (0.07-0.12), so its
    # frames are written and the memory state moves through the file
    return _calibrated("mnad_pred", memory={"gate": 0.15}, test={"amp": False, "channels_last": False})


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_scores_equal_pytorch_with_the_memory_written_through_the_file(pred, fmt, tmp_path):
    report = export(pred, tmp_path / f"pred.{fmt}", fmt, frames=30)
    assert report["max_abs_score_difference"] <= 1e-4 and report["scores_checked"] == 26
    model = load_exported(tmp_path / f"pred.{fmt}")
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    frames = list(test.video(1).frames)
    torch_scores = np.array([r.score for r in pred.stream(frames)])
    np.testing.assert_allclose(model.scores(test.video(1).frames.numpy()), torch_scores, atol=1e-4, rtol=0)
    # the memory state really moves through the file: its output state differs from its input
    model.reset()
    out = model.step(np.stack([f.numpy() for f in frames[:5]])[None])
    assert set(out) >= {"mse", "psnr", "distance", "map"} or set(out) >= {"mse", "distance", "map"}
    assert not np.array_equal(model.state[0], model.initial[0])
    assert model.meta["threshold"] == pred.threshold_ and model.meta["calibration"] == pred.calibration_


def test_an_export_scores_relative_to_the_running_floor_as_eval_does(tmp_path):
    # test.relative lives in the calibration the file carries: the exported model applies it as the
    # checkpoint does, offline and streamed
    det = _calibrated("mnad_pred", memory={"gate": 0.05},
                      test={"relative": 12, "reset": "video", "amp": False, "channels_last": False, "confirm": 0})
    export(det, tmp_path / "rel.onnx", "onnx", frames=30)
    model = load_exported(tmp_path / "rel.onnx")
    assert model.meta["calibration"]["relative"] == 12
    video = make_synthetic("testing", (32, 32), 3, 32, SPEC).video(1)
    exported = model.scores(video.frames.numpy())
    assert exported[0] == 0.0  # the first frame is its own floor (confirm 0: its own decision)
    np.testing.assert_allclose(exported, det.score(video).calibrated, atol=1e-4, rtol=0)


def test_export_of_a_memoryless_model(tmp_path):
    det = _calibrated("ae")
    report = export(det, tmp_path / "ae.onnx", "onnx")
    assert report["max_abs_score_difference"] <= 1e-4
    assert load_exported(tmp_path / "ae.onnx").state == []


def test_a_tampered_onnx_file_is_refused_with_the_difference(pred, tmp_path):
    export(pred, tmp_path / "pred.onnx", "onnx")
    proto = onnx.load(str(tmp_path / "pred.onnx"))
    weight = next(t for t in proto.graph.initializer if t.name.endswith("encoder.stages.0.0.weight"))
    array = onnx.numpy_helper.to_array(weight).copy()
    array *= 1.5  # a changed weight: the first convolution, which every signal depends on
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(proto, str(tmp_path / "tampered.onnx"))
    with pytest.raises(memad.CheckpointError, match=r"check on load: the largest absolute score difference from "
                                                    r"PyTorch on the check sequence is [0-9.e+-]+, above the [0-9.e+-]+ allowed"):
        load_exported(tmp_path / "tampered.onnx")


def test_a_mismatched_export_is_refused(pred, tmp_path):
    """Another model's metadata (config, calibration, check) on this file's network: refused on load."""
    other = _calibrated("mnad_pred", seed=1, memory={"gate": 0.05})
    export(pred, tmp_path / "a.onnx", "onnx")
    export(other, tmp_path / "b.onnx", "onnx")
    a, b = onnx.load(str(tmp_path / "a.onnx")), onnx.load(str(tmp_path / "b.onnx"))
    meta_b = next(p.value for p in b.metadata_props if p.key == TAG)
    next(p for p in a.metadata_props if p.key == TAG).value = meta_b
    onnx.save(a, str(tmp_path / "mixed.onnx"))
    with pytest.raises(memad.CheckpointError, match="largest absolute score difference"):
        load_exported(tmp_path / "mixed.onnx")
    torch.save({"not": "an export"}, tmp_path / "plain.ts")
    with pytest.raises(memad.CheckpointError, match="not a readable TorchScript file"):
        load_exported(tmp_path / "plain.ts")


def test_export_and_detect_with_onnxruntime_from_the_cli(pred, tmp_path, capsys):
    ckpt = pred.save(tmp_path / "pred.pt")
    assert main(["export", str(ckpt), "--format", "onnx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(tmp_path / "pred.onnx") and report["max_abs_score_difference"] <= 1e-4
    from memad.data.video_files import write_video

    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    video = write_video(tmp_path / "v.avi", test.video(0).frames.permute(0, 2, 3, 1).numpy())
    for engine, src in (("onnxruntime", tmp_path / "pred.onnx"), ("torch", ckpt)):
        assert main(["detect", str(src), str(video), "--out", str(tmp_path / engine), "--no-video", "--no-html",
                     "--engine", engine]) == 0
    rows = {e: [float(r["score"]) for r in csv.DictReader(open(tmp_path / e / "scores.csv"))]
            for e in ("onnxruntime", "torch")}
    np.testing.assert_allclose(rows["onnxruntime"], rows["torch"], atol=1e-4)
    uncalibrated = memad.build("ae", **tiny()).save(tmp_path / "ae.pt")
    assert main(["export", str(uncalibrated)]) == 2
    assert "is not calibrated, which an export needs" in capsys.readouterr().err
