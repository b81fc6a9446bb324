"""memad compare: table, plots and report; finished runs reused, interrupted runs resumed."""

import csv
import json
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import memad
import memad.scoring.runner
import memad.training
from memad.cli import main
from memad.data.synthetic import SyntheticSpec, make_synthetic
from tests.conftest import tiny

compare_module = sys.modules["memad.reports.compare"]  # memad.compare is the function


@memad.register("dataset", "test_compare_small")
def small_synthetic(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """The synthetic scene with fewer, shorter videos, so that a comparison takes seconds."""
    return make_synthetic(split, image_size, channels, mask_size,
                          SyntheticSpec(train_videos=2, test_videos=4, frames_per_video=24))


DATA = "test_compare_small"
OVERRIDES = tiny(train={"max_steps_per_epoch": 3})


class Calls:
    """Counts calls of training.train and scoring.runner.score_videos, optionally stopping one run."""

    def __init__(self, monkeypatch, stop_seed=None, stop_epoch=None):
        self.train, self.score, self.epochs_logged = [], 0, []
        real_train, real_score = memad.training.train, memad.scoring.runner.score_videos

        def train(det, data, **kw):
            self.train.append(det.config["train"]["seed"])
            log = kw.get("log")

            def spy(record):
                if log is not None:
                    log(record)
                self.epochs_logged.append((det.config["train"]["seed"], record["epoch"]))
                if det.config["train"]["seed"] == stop_seed and record["epoch"] == stop_epoch:
                    raise KeyboardInterrupt  # as a user's Ctrl-C before this epoch's checkpoint
            kw["log"] = spy
            return real_train(det, data, **kw)

        def score(*a, **kw):
            self.score += 1
            return real_score(*a, **kw)

        monkeypatch.setattr(memad.training, "train", train)
        monkeypatch.setattr(memad.scoring.runner, "score_videos", score)


def test_compare_writes_table_plots_report_and_reuses_finished_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    first = memad.compare(["mnad_pred", "mnad_recon"], DATA, seeds=2, out=out, overrides=OVERRIDES, progress=False)
    for name in ("results.md", "results.csv", "results.json", "report.md", "plots/roc.png", "plots/timelines.png",
                 "plots/top_frames_mnad_pred.png", "plots/top_frames_mnad_recon.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not any(r.reused for r in first.runs) and len(first.runs) == 4

    results = json.loads((out / "results.json").read_text())
    for row in results["presets"]:
        runs = [r["metrics"] for r in results["runs"] if r["preset"] == row["preset"]]
        aurocs = [m["frame_auroc"] for m in runs]
        assert row["seeds"] == 2
        assert row["frame_auroc_mean"] == pytest.approx(np.mean(aurocs))
        assert row["frame_auroc_std"] == pytest.approx(np.std(aurocs, ddof=1))
        assert row["pixel_auroc_mean"] is not None  # the synthetic data has masks
    # Every run's AUROCs agree with its saved scores (the paper's and the calibrated ones), the flags with the
    # calibrated threshold; the checkpoint carries the calibration, whose threshold flags about 1% of its frames.
    for run in first.runs:
        npz = np.load(run.dir / "scores.npz")
        assert run.metrics["frame_auroc"] == pytest.approx(roc_auc_score(npz["labels"], npz["scores"]))
        assert run.metrics["calibrated_frame_auroc"] == pytest.approx(roc_auc_score(npz["labels"], npz["calibrated"]))
        flagged = npz["calibrated"] >= run.metrics["threshold"]
        assert run.metrics["flagged"] == int(flagged.sum())
        normal = npz["labels"] == 0
        assert run.metrics["false_alarm_rate"] == pytest.approx(flagged[normal].mean())
        loaded = memad.load(run.dir / "checkpoint.pt")
        assert loaded.threshold_ == pytest.approx(run.metrics["threshold"])
        cal = loaded.calibration_
        # calibrated on the training video kept out of training (train.holdout: one of the two)
        assert cal["fit_false_alarm_rate"] <= 0.01 + 1 / cal["frames"] and cal["videos_from"] == "held out of training"
        assert cal["videos"] == loaded.holdout_videos_ == [run.metrics["holdout_videos"][0]]
    with open(out / "results.csv") as fh:
        assert [r["preset"] for r in csv.DictReader(fh)] == ["mnad_pred", "mnad_recon"]
    report = (out / "report.md").read_text()
    assert "plots/roc.png" in report and "results.csv" in report and "| mnad_pred | 2 |" in report

    # The same call again, from the command line: nothing is trained or scored.
    calls = Calls(monkeypatch)
    sets = ["--set", "data.image_size=32", "--set", "encoder.widths=[8,16,32,64]", "--set", "train.epochs=1",
            "--set", "train.batch_size=4", "--set", "train.progress=false", "--set", "train.device=cpu",
            "--set", "train.max_steps_per_epoch=3"]
    capsys.readouterr()
    assert main(["compare", "mnad_pred", "mnad_recon", "--data", DATA, "--seeds", "2", "--out", str(out),
                 "--no-plots", *sets]) == 0
    printed = capsys.readouterr()
    assert calls.train == [] and calls.score == 0
    assert "| mnad_pred | 2 |" in printed.out and "4 runs (4 reused)" in printed.err
    assert json.loads((out / "results.json").read_text())["presets"] == results["presets"]


def test_interrupted_comparison_resumes_the_unfinished_run(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    calls = Calls(monkeypatch, stop_seed=1, stop_epoch=2)
    with pytest.raises(KeyboardInterrupt):
        memad.compare(["ae"], DATA, seeds=2, epochs=2, out=out, overrides=OVERRIDES, progress=False, plots=False)
    seed0, seed1 = out / "runs/ae/seed0", out / "runs/ae/seed1"
    assert (seed0 / "metrics.json").is_file() and not (seed1 / "metrics.json").exists()
    assert (seed1 / "checkpoint.pt").is_file()  # epoch 1 was saved before the interruption
    finished = (seed0 / "metrics.json").read_text()

    monkeypatch.undo()
    calls = Calls(monkeypatch)
    result = memad.compare(["ae"], DATA, seeds=2, epochs=2, out=out, overrides=OVERRIDES, progress=False,
                           plots=False)
    assert calls.train == [1]  # only the unfinished run trains
    assert calls.epochs_logged == [(1, 2)]  # and only its missing epoch
    assert [r.reused for r in result.runs] == [True, False]
    assert (seed0 / "metrics.json").read_text() == finished
    assert len(memad.load(seed1 / "checkpoint.pt").history_) == 2
    assert result.runs[1].metrics["train_seconds"] > 0 and result.runs[1].metrics["epochs"] == 2


def test_an_override_a_preset_does_not_accept_names_the_preset(tmp_path):
    with pytest.raises(memad.ConfigError, match=r"preset 'ae'.*memory\.items"):
        memad.compare(["mnad_pred", "ae"], DATA, out=tmp_path / "cmp", overrides={**OVERRIDES, "memory.items": 5})
    assert not (tmp_path / "cmp").exists()  # refused before anything ran
    with pytest.raises(memad.ConfigError, match="named twice"):
        memad.compare(["ae", "ae"], DATA, out=tmp_path / "cmp")
    with pytest.raises(memad.ConfigError, match="seeds"):
        memad.compare(["ae"], DATA, seeds=0, out=tmp_path / "cmp")


def test_a_finished_run_with_another_config_is_not_silently_reused(tmp_path):
    out = tmp_path / "cmp"
    memad.compare(["ae"], DATA, out=out, overrides=OVERRIDES, progress=False, plots=False)
    with pytest.raises(memad.ConfigError, match=r"holds a finished run with a different config \(train\.lr: "
                                                r"[0-9.e-]+ there, 0\.001 now\)") as err:
        memad.compare(["ae"], DATA, out=out, overrides={**OVERRIDES, "train.lr": 1e-3}, progress=False)
    assert str(out / "runs" / "ae" / "seed0") in str(err.value)
