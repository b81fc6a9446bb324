"""benchmarks/bench.py: the per-run record, resuming, and the summary written between the doc's markers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import memad
from memad.errors import MemadError

from .conftest import load_script

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--data", "synthetic", "--presets", "mnad_pred", "--seeds", "1", "--epochs", "1",
        "--set", "data.image_size=32", "--set", "encoder.widths=[8,16,32,64]",
        "--set", "train.max_steps_per_epoch=2", "--set", "memory.gate=null", "--set", "test.chunk=16",
        "--device", "cpu", "--tag", "t", "--no-progress", "--chunks", "1"]


sys.path.insert(0, str(REPO / "benchmarks"))  # the scripts import their shared pieces (benchlib) from there


def _load_bench():
    return load_script("benchmarks/bench.py", "memad_bench_script")


bench = _load_bench()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    assert bench.main(ARGS + ["--results", str(folder)]) == 0
    return folder


def test_record_holds_both_modes_of_the_same_model_and_the_environment(results):
    data = json.loads((results / "ped2_t.json").read_text())
    assert data["tag"] == "t" and data["command"][1] == "benchmarks/bench.py" and "--tag t" in data["command_line"]
    (run,) = data["runs"]
    seq, bat = run["modes"]["sequential"], run["modes"]["batched"]
    # Independent of the benchmark: the same seed and steps train the same weights; score them in each mode.
    config = memad.config.make_config("mnad_pred", {**bench.parse_overrides(ARGS[9:19:2]), "train.epochs": 1,
                                                    "train.device": "cpu", "train.progress": False,
                                                    "train.holdout": 0.0})  # bench.py's paper protocol
    det = memad.build(config)
    det.fit("synthetic")
    for mode, row in (("sequential", seq), ("batched", bat)):
        det.config["test"]["mode"] = mode
        assert det.evaluate("synthetic")["frame_auroc"] == pytest.approx(row["frame_auroc"], abs=1e-9)
    assert run["frame_auroc"] == seq["frame_auroc"] and run["frame_auroc_batched"] == bat["frame_auroc"]
    # A batched chunk of one frame writes the memory after every frame: the sequential procedure again.
    assert run["modes"]["batched_chunk1"]["frame_auroc"] == seq["frame_auroc"]
    assert (seq["chunk"], bat["chunk"], run["modes"]["batched_chunk1"]["chunk"]) == (1, 16, 1)
    assert run["auroc_batched_minus_sequential"] == pytest.approx(bat["frame_auroc"] - seq["frame_auroc"])
    assert run["test_fps_sequential"] == pytest.approx(seq["frames"] / seq["seconds"])
    assert run["train_steps_per_epoch"] == 2 and run["train_epochs_timed"] == 1
    assert run["train_clips_per_second"] == pytest.approx(2 * 4 / run["train_seconds"])
    assert run["peak_gpu_mib_train"] is None and run["memory_writes_at_test"] is True
    env = run["environment"]
    in_git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode == 0
    if in_git:  # others may commit while the test runs: the recorded commit is HEAD or one of its ancestors
        ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", env["git"]["commit"], "HEAD"], cwd=REPO)
        assert len(env["git"]["commit"]) == 40 and ancestor.returncode == 0
    else:  # a copy without .git: no commit unless the caller names one
        assert env["git"] == {"commit": os.environ.get("MEMAD_GIT_COMMIT") or None, "dirty": None}
    assert env["torch"] == torch.__version__ and env["device_type"] == "cpu"
    assert run["overrides"]["data.image_size"] == 32 and run["config"]["memory"]["gate"] is None


def test_rerun_skips_finished_runs_and_refuses_another_config(results, capsys):
    before = json.loads((results / "ped2_t.json").read_text())["runs"]
    assert bench.main(ARGS + ["--results", str(results)]) == 0
    assert json.loads((results / "ped2_t.json").read_text())["runs"] == before
    assert bench.main(ARGS + ["--results", str(results), "--set", "train.lr=0.001"]) == 2
    assert "train.lr: 0.0002 there, 0.001 now" in capsys.readouterr().err


def test_summary_rewrites_only_the_text_between_the_markers(results, tmp_path):
    doc = tmp_path / "doc.md"
    before, after = "# Title\n\nintro\n", "\n## Later section\n\nkept as is\n"
    doc.write_text(before + "<!-- BEGIN bench-summary (generated) -->\nold table\n<!-- END bench-summary -->"
                   + after)
    assert bench.main(["--summary-only", "--results", str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith(before + "<!-- BEGIN bench-summary (generated) -->\n") and text.endswith(
        "<!-- END bench-summary -->" + after)
    assert "old table" not in text and (results / "ped2_auroc.png").is_file()
    run = json.loads((results / "ped2_t.json").read_text())["runs"][0]
    row = next(line for line in text.splitlines() if line.startswith("| `ped2_t.json` | mnad_pred | 32px"))
    assert f"| {100 * run['frame_auroc']:.2f} |" in row  # one seed: the value, no spread


def test_summary_statistics_and_marker_errors():
    assert bench._mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sample standard deviation
    assert bench._fmt([0.9, 0.92, None], 1, 100) == "91.0 ± 1.4"
    with pytest.raises(MemadError, match="has no '<!-- END bench-summary -->'"):
        bench.replace_between_markers("<!-- BEGIN bench-summary -->\nno end\n", "x")
    with pytest.raises(MemadError, match="no line starting with"):
        bench.replace_between_markers("nothing here\n", "x")


def _load_cpu_fps():
    return load_script("benchmarks/cpu_fps.py", "memad_cpu_fps_script")


def test_cpu_fps_measures_the_frames_asked_for_and_marks_modes_without_writes():
    cpu_fps = _load_cpu_fps()
    small = {"data.image_size": 32, "encoder.widths": [8, 16, 32, 64]}
    seq = cpu_fps.measure("mnad_recon", "quick", small, "sequential", 3, repeats=1)
    assert seq["frames"] == 3 and seq["chunk"] == 1 and seq["memory_writes_at_test"]
    assert seq["fps"] == pytest.approx(3 / seq["seconds"]) and seq["seconds"] == seq["seconds_per_pass"][0]
    ae = cpu_fps.measure("ae", "quick", small, "batched", 2, repeats=2)
    assert ae["chunk"] == 2 and not ae["memory_writes_at_test"] and ae["seconds"] == min(ae["seconds_per_pass"])
    header = {"environment": bench.environment(torch.device("cpu")), "repeats": 1, "load_average": "0 before"}
    md = cpu_fps.table([{**seq, "threads": 1}, {**ae, "threads": 1}], header)
    assert "| ae | 1 | n/a | n/a | = batched |" in md and f"| mnad_recon | 1 | n/a | n/a | {cpu_fps._fps(seq['fps'])} |" in md
    video = cpu_fps.synthetic_video(5, 3, 16)
    assert video.frames.shape == (5, 3, 16, 16) and video.frames.dtype == torch.uint8
    assert torch.equal(video.frames[:, 0], video.frames[:, 2])  # grey: the same in every channel
