"""The command line: list, train (with resume) and eval, in process."""

import json
import os
import subprocess
import sys

import pytest

from memad.checkpoint import read_checkpoint
from memad.cli import main

TINY_SET = ["--set", "data.image_size=32", "--set", "encoder.widths=[8,16,32,64]", "--set", "train.progress=false",
            "--set", "train.max_steps_per_epoch=3", "--set", "train.device=cpu"]
METRIC_KEYS = {"frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc", "fps"}


def test_list_json_shows_sources(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["components"]["preset"]["mnad_pred"].startswith("memad")
    assert {"mnad", "none"} <= set(listing["components"]["memory"])
    assert {"mnad", "mnad_code", "ema", "none"} <= set(listing["components"]["update_rule"])


def test_train_then_eval_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "mnad_recon", "--data", "synthetic", "--epochs", "1", "--out", str(out), *TINY_SET]) == 0
    ckpt = read_checkpoint(out / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["config"]["data"]["image_size"] == 32
    assert "items" in "".join(ckpt["model"])  # memory items travel with the weights
    assert (out / "config.yaml").is_file() and (out / "history.json").is_file()
    capsys.readouterr()
    assert main(["eval", str(out / "checkpoint.pt"), "--data", "synthetic", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert METRIC_KEYS <= set(metrics)
    assert 0 <= metrics["frame_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1 and metrics["fps"] > 0


def test_train_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "ae", "--data", "synthetic", "--epochs", "1", "--out", str(out), *TINY_SET]) == 0
    first = read_checkpoint(out / "checkpoint.pt")
    assert main(["train", "ae", "--data", "synthetic", "--epochs", "2", "--out", str(out), *TINY_SET]) == 0
    second = read_checkpoint(out / "checkpoint.pt")
    assert second["epoch"] == 2
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]  # epoch 1 was not trained again


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "mnad_prd", "--data", "synthetic"], "did you mean 'mnad_pred'"),
        (["train", "mnad_pred", "--data", "synthetic", "--set", "memory.itmes=3"], "did you mean 'items'"),
        (["train", "mnad_pred", "--data", "synthetic", "--set", "train.lr=fast"], "train.lr: expected float"),
        (["train", "mnad_pred", "--data", "synthetic", "--set", "memory.update=mnda"], "did you mean 'mnad'"),
    ],
)
def test_user_errors_are_one_line_with_status_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("memad: error:") and fragment in err


def test_closed_stdout_stops_quietly():
    """`memad list --json | head`: a reader that went away is not an error with a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before memad writes
    try:
        done = subprocess.run([sys.executable, "-m", "memad", "list", "--json"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
