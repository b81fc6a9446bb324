"""Output paths, shape-changing overrides and options, each checked before any work starts (docs/reliability.md):
every case names the option or field, and nothing is half-written, silently resumed or left stale."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import memad
import memad.reports.detect
from memad.cli import main
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.data.video_files import write_video

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=24)
SET = ["--set", "data.image_size=32", "--set", "encoder.widths=[8,16,32,64]", "--set", "train.max_steps_per_epoch=2",
       "--set", "train.progress=false", "--set", "train.device=cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 3}))
    fit_and_calibrate(det, SPEC)
    return det.save(tmp_path_factory.mktemp("ckpt") / "pred.pt")


def _err(capsys) -> str:
    return capsys.readouterr().err


# -- output paths ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "compare"])
def test_out_naming_a_file_or_a_folder_under_a_file_is_refused_before_training(command, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.setattr(memad.training, "train", lambda *a, **k: pytest.fail("trained despite a bad --out"))
    (tmp_path / "taken").write_text("x")
    args = [command, "mnad_pred", "--data", "synthetic", *SET]
    assert main([*args, "--out", str(tmp_path / "taken")]) == 2
    assert f"--out {tmp_path / 'taken'}: is a file; expected a folder" in _err(capsys)
    assert main([*args, "--out", str(tmp_path / "taken" / "run")]) == 2
    assert f"--out {tmp_path / 'taken' / 'run'}: {tmp_path / 'taken'} is a file, so there can be no folder under it" \
        in _err(capsys)


def test_out_in_a_folder_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    real = os.access
    # As root (CI) permissions do not stop writes: os.access then answers as for another user.
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    try:
        assert main(["train", "mnad_pred", "--data", "synthetic", *SET, "--out", str(locked / "run")]) == 2
        assert "permission denied" in _err(capsys)
    finally:
        locked.chmod(0o700)


def test_export_out_with_another_ending_is_refused_and_a_folder_takes_the_default_name(checkpoint, tmp_path, capsys):
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "some" / "checkpoint.pt")]) == 2
    assert f"--out {tmp_path / 'some' / 'checkpoint.pt'}: expected a file ending in .onnx, got .pt" in _err(capsys)
    folder = tmp_path / "exports"
    folder.mkdir()
    assert main(["export", str(checkpoint), "--out", str(folder)]) == 0
    assert (folder / "pred.onnx").is_file() and not list(folder.glob(".*tmp*"))


def test_calibrate_out_under_a_file_fails_before_calibrating(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memad.Detector, "calibrate", lambda *a, **k: pytest.fail("calibrated despite a bad --out"))
    (tmp_path / "file").write_text("x")
    assert main(["calibrate", str(checkpoint), "--data", "synthetic", "--out", str(tmp_path / "file" / "c.pt")]) == 2
    assert "is a file, so there can be no folder under it" in _err(capsys)


def test_maps_out_under_a_file_is_refused(checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["maps", str(checkpoint), "--data", "synthetic", "--out", str(tmp_path / "file" / "m.png")]) == 2
    assert "is a file, so there can be no folder under it" in _err(capsys)


def _clip(tmp_path, name: str, frames: int = 12):
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    return write_video(tmp_path / name, test.video(0).frames[:frames].permute(0, 2, 3, 1).numpy(), fps=10)


def test_detect_overwrite_replaces_the_earlier_run_as_a_whole(checkpoint, tmp_path):
    video = _clip(tmp_path, "clip.mp4")
    out = tmp_path / "out"
    assert main(["detect", str(checkpoint), str(video), "--out", str(out)]) == 0
    assert (out / "annotated.mp4").is_file() and (out / "report.html").is_file()
    assert main(["detect", str(checkpoint), str(video), "--out", str(out), "--overwrite", "--no-video",
                 "--no-html"]) == 0
    assert not (out / "annotated.mp4").exists() and not (out / "report.html").exists()  # nothing stale survives
    assert (out / "scores.csv").is_file() and json.loads((out / "summary.json").read_text())["frames_scored"] > 0


def test_detect_overwrite_never_deletes_files_it_did_not_write(checkpoint, tmp_path, capsys):
    video = _clip(tmp_path, "clip.mp4")
    out = tmp_path / "out"
    assert main(["detect", str(checkpoint), str(video), "--out", str(out), "--no-video"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["detect", str(checkpoint), str(video), "--out", str(out), "--overwrite"]) == 2
    assert f"holds {out / 'notes.txt'}, which memad detect did not write" in _err(capsys)
    assert (out / "notes.txt").read_text() == "mine" and (out / "scores.csv").is_file()


def test_detect_outputs_of_videos_with_the_same_stem_do_not_collide(checkpoint, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    _clip(folder, "a.mp4")
    _clip(folder, "a.avi")
    out = tmp_path / "out"
    assert main(["detect", str(checkpoint), str(folder), "--out", str(out), "--no-video", "--no-html"]) == 0
    assert (out / "a_mp4" / "scores.csv").is_file() and (out / "a_avi" / "scores.csv").is_file()


# -- shape-changing overrides ----------------------------------------------------------------------------------
@pytest.mark.parametrize("override, changed", [
    ("memory.items=20", "memory.items is (10, 64) in the checkpoint, (20, 64) here"),
    ("encoder.widths=[8,16,32,32]", "in the checkpoint"),
    ("memory=memae", "memory.items is (10, 64) in the checkpoint, (2000, 64) here"),
    ("data.channels=1", "in the checkpoint"),
])
def test_an_override_that_changes_the_parameters_is_refused_naming_the_field(checkpoint, override, changed, capsys):
    assert main(["eval", str(checkpoint), "--data", "synthetic", "--set", override]) == 2
    err = _err(capsys)
    assert f"--set {override.split('=')[0]} changes the model's parameters" in err and changed in err
    assert "needs retraining" in err and "Traceback" not in err


def test_resuming_a_run_of_another_frame_size_is_refused_and_no_resume_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "mnad_pred", "--data", "synthetic", *SET, "--epochs", "1", "--out", str(out),
                 "--no-calibrate"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    bigger = [*SET, "--set", "data.image_size=64"]
    assert main(["train", "mnad_pred", "--data", "synthetic", *bigger, "--epochs", "1", "--out", str(out),
                 "--no-calibrate"]) == 2
    assert "holds a run of another shape (data.image_size: 32 there, 64 here)" in _err(capsys)
    assert (out / "checkpoint.pt").read_bytes() == before  # not overwritten
    assert main(["train", "mnad_pred", "--data", "synthetic", *bigger, "--epochs", "1", "--out", str(out),
                 "--no-calibrate", "--no-resume"]) == 0
    assert memad.load(out / "checkpoint.pt").config["data"]["image_size"] == 64


# -- options checked before any work ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["train", "mnad_pred", "--data", "synthetic", "--false-alarm-rate", "1.5"],
     "argument --false-alarm-rate: expected a number > 0 and < 1, got 1.5"),
    (["train", "mnad_pred", "--data", "synthetic", "--false-alarm-rate", "0"],
     "argument --false-alarm-rate: expected a number > 0 and < 1, got 0"),
    (["compare", "ae", "--data", "synthetic", "--seeds", "0"], "argument --seeds: expected an integer >= 1, got 0"),
    (["detect", "x.pt", "y.mp4", "--timeout", "-1"], "argument --timeout: expected a number > 0, got -1"),
    (["detect", "x.pt", "y.mp4", "--timeout", "0"], "argument --timeout: expected a number > 0, got 0"),
    (["export", "x.pt", "--atol", "nan"], "argument --atol: expected a number > 0, got 'nan'"),
])
def test_a_bad_option_value_is_one_line_before_anything_runs(args, message, capsys, monkeypatch):
    monkeypatch.setattr(memad.training, "train", lambda *a, **k: pytest.fail("trained despite a bad option"))
    assert main(args) == 2
    err = _err(capsys)
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_dataset_argument_it_does_not_take_is_one_line(capsys):
    assert main(["train", "ae", "--data", "synthetic:3", *SET]) == 2
    assert "dataset 'synthetic' takes no argument (--data synthetic), got '3'" in _err(capsys)


def test_a_timeout_below_zero_is_refused_by_the_library_too():
    from memad.data.footage import resolve_footage

    with pytest.raises(memad.ConfigError, match="timeout: expected seconds > 0, got -1"):
        resolve_footage("rtsp://127.0.0.1:9/x", timeout=-1)


# -- the rest --------------------------------------------------------------------------------------------------
def test_after_an_interrupt_the_summary_counts_what_scores_csv_holds(checkpoint, tmp_path, monkeypatch):
    video = _clip(tmp_path, "clip.mp4", frames=20)
    out = tmp_path / "out"
    real = memad.reports.detect._Rows.write
    calls = {"n": 0}

    def write_then_stop(self, *a, **k):
        real(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # right after a row is written, before anything else of that frame

    monkeypatch.setattr(memad.reports.detect._Rows, "write", write_then_stop)
    assert main(["detect", str(checkpoint), str(video), "--out", str(out), "--no-video"]) == 130
    rows = (out / "scores.csv").read_text().strip().splitlines()[1:]
    assert json.loads((out / "summary.json").read_text())["frames_scored"] == len(rows) == 5


def test_a_video_too_short_for_a_clip_is_an_error_not_zero_frames(checkpoint, tmp_path, capsys):
    video = _clip(tmp_path, "short.mp4", frames=2)
    assert main(["detect", str(checkpoint), str(video), "--out", str(tmp_path / "out")]) == 2
    assert ("no frame scored (frames read: short: 2); mnad_pred scores a frame once a clip of 5 frames is complete"
            in _err(capsys))


def test_a_pickled_checkpoint_is_refused_naming_what_it_would_call(tmp_path):
    class Payload:
        def __reduce__(self):
            return (eval, ("1",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "memad-checkpoint", "version": 2, "x": Payload()}, path)
    with pytest.raises(memad.CheckpointError, match=r"it would call or build (builtins\.)?eval\b"):
        memad.load(path)
