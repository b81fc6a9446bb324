"""Interrupted runs: a training process killed with SIGKILL resumes from its last checkpoint and ends
where an uninterrupted run ends; checkpoints are replaced atomically, so a crash while saving never
leaves a truncated file where a good one was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import memad
from memad import checkpoint as ckmod
from memad.checkpoint import atomic_save, read_checkpoint

from .conftest import tiny

EPOCHS = 5
TRAIN_ARGS = [
    "train", "mnad_pred", "--data", "synthetic", "--epochs", str(EPOCHS), "--seed", "3", "--device", "cpu",
    "--set", "data.image_size=32", "--set", "data.channels=1", "--set", "encoder.widths=[8,16,32,64]",
    "--set", "train.max_steps_per_epoch=8", "--set", "train.progress=false",
]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "memad", *TRAIN_ARGS, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


def _wait_for_saves(path: Path, count: int, proc: subprocess.Popen, timeout: float = 240) -> list[float]:
    """Times at which ``path`` was (re)written, until ``count`` saves were seen."""
    seen: list[float] = []
    last = None
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert proc.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint written in time"
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            last = stamp
            seen.append(time.monotonic())
        time.sleep(0.02)
    return seen


def _sigkill(victim: subprocess.Popen) -> None:
    """Kill ``victim`` with SIGKILL (no handler runs, nothing is flushed) and check that is how it ended."""
    if victim.poll() is None:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL, f"the process ended by itself (exit {victim.returncode})"


def test_sigkill_mid_epoch_resumes_to_the_same_weights(tmp_path):
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "interrupted"
    reference = _start(ref_dir)  # runs beside the one we kill
    victim = _start(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    try:
        saves = _wait_for_saves(ckpt, 2, victim)
        epoch_seconds = saves[1] - saves[0]
        time.sleep(epoch_seconds / 2)  # halfway through the third epoch
    finally:
        _sigkill(victim)
    stopped_at = read_checkpoint(ckpt)["epoch"]
    assert 2 <= stopped_at < EPOCHS, "the kill did not land inside the run"
    assert not (run_dir / "history.json").exists()  # written only when a run completes

    resumed = _start(run_dir)  # the same command again: resumes from the checkpoint
    _finish(resumed)
    _finish(reference)

    ref, got = read_checkpoint(ref_dir / "checkpoint.pt"), read_checkpoint(ckpt)
    assert got["epoch"] == ref["epoch"] == EPOCHS
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    ref_history = json.loads((ref_dir / "history.json").read_text())
    for a, b in zip(history, ref_history):  # the same losses epoch by epoch (wall times differ)
        assert {k: a[k] for k in ("loss", "reconstruction", "memory", "lr")} == \
               {k: b[k] for k in ("loss", "reconstruction", "memory", "lr")}
    assert ref["model"].keys() == got["model"].keys()
    for name, tensor in ref["model"].items():  # weights and memory items, bit for bit
        assert torch.equal(tensor, got["model"][name]), name


COMPARE_EPOCHS = 4
COMPARE_ARGS = [
    "compare", "ae", "--data", "digits:0", "--epochs", str(COMPARE_EPOCHS), "--device", "cpu", "--no-plots",
    "--set", "data.image_size=16", "--set", "data.channels=1", "--set", "encoder.widths=[8,16,32,64]",
    "--set", "train.max_steps_per_epoch=6", "--set", "train.progress=false", "--set", "scorer.normalise=none",
]


def _start_compare(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "memad", *COMPARE_ARGS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_sigkill_during_compare_resumes_the_unfinished_run(tmp_path):
    """``memad compare`` killed while training its second seed: the rerun reuses the finished seed and
    resumes the other from its checkpoint, ending where an uninterrupted run of that seed ends."""
    out, ref_out = tmp_path / "cmp", tmp_path / "reference"
    reference = _start_compare(ref_out, "--seeds", "1", "--seed", "1")  # seed 1 alone, never interrupted
    victim = _start_compare(out, "--seeds", "2", "--seed", "0")
    seed0, seed1 = out / "runs/ae/seed0", out / "runs/ae/seed1"
    try:
        _wait_for_saves(seed1 / "checkpoint.pt", 1, victim)  # seed 0 is finished, seed 1 has saved epoch 1
    finally:
        _sigkill(victim)
    assert (seed0 / "metrics.json").is_file() and not (seed1 / "metrics.json").exists()
    saved = read_checkpoint(seed1 / "checkpoint.pt")
    stopped_at = saved["epoch"]
    assert 1 <= stopped_at < COMPARE_EPOCHS, "the kill did not land inside seed 1's training"
    finished = (seed0 / "metrics.json").read_text()

    resumed = _start_compare(out, "--seeds", "2", "--seed", "0")  # the same command again
    stdout, stderr = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stderr.decode()
    _finish(reference)
    assert "2 runs (1 reused)" in stderr.decode()
    assert (seed0 / "metrics.json").read_text() == finished  # the finished run was not redone
    history = json.loads((seed1 / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, COMPARE_EPOCHS + 1))
    # Resumed, not restarted: the epochs done before the kill keep their records (wall times included).
    assert history[:stopped_at] == saved["history"]
    got = json.loads((seed1 / "metrics.json").read_text())["metrics"]
    want = json.loads((ref_out / "runs/ae/seed0/metrics.json").read_text())["metrics"]
    assert got["epochs"] == COMPARE_EPOCHS and got["train_seconds"] > 0
    for key in ("frame_auroc", "aupr", "threshold", "f1"):  # raw scores: the same model gives the same numbers
        assert got[key] == want[key], key
    rows = json.loads((out / "results.json").read_text())["presets"]
    assert [(r["preset"], r["seeds"]) for r in rows] == [("ae", 2)]


# -- atomic saves ------------------------------------------------------------------------------
def _good_checkpoint(path: Path) -> dict:
    det = memad.build("ae", **tiny())
    det.save(path)
    return read_checkpoint(path)


def _half_written_save(obj, fh, *args, **kwargs):
    """Stands in for ``torch.save``: writes part of a real checkpoint, then the process 'dies'."""
    import io

    buf = io.BytesIO()
    _REAL_SAVE(obj, buf)
    fh.write(buf.getvalue()[: buf.tell() // 2])
    fh.flush()
    raise KeyboardInterrupt("simulated crash inside torch.save")


_REAL_SAVE = torch.save


def test_crash_inside_torch_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ae.pt"
    before = _good_checkpoint(path)
    old_bytes = path.read_bytes()
    monkeypatch.setattr(ckmod.torch, "save", _half_written_save)
    det = memad.build("ae", **tiny(train={"seed": 1}))
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        det.save(path)
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae.pt"]  # no temporary file left behind
    after = read_checkpoint(path)
    for name, tensor in before["model"].items():
        assert torch.equal(tensor, after["model"][name])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_inside_torch_save_keeps_the_old_file(tmp_path):
    """A process killed mid-write cannot clean up: its temporary file stays, but the old checkpoint is whole."""
    path = tmp_path / "ae.pt"
    _good_checkpoint(path)
    old_bytes = path.read_bytes()
    payload = {"format": ckmod.FORMAT, "version": ckmod.VERSION, "weights": torch.arange(100_000.0)}
    pid = os.fork()
    if pid == 0:  # child: write half of the new checkpoint, then die without any cleanup
        try:
            def killed_mid_write(obj, fh, *a, **k):
                import io

                buf = io.BytesIO()
                _REAL_SAVE(obj, buf)
                fh.write(buf.getvalue()[: buf.tell() // 2])
                fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            ckmod.torch.save = killed_mid_write
            atomic_save(payload, path)
        finally:
            os._exit(3)  # only reached if the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert path.read_bytes() == old_bytes
    read_checkpoint(path)  # still a good checkpoint
    leftovers = [p for p in tmp_path.iterdir() if p.name != "ae.pt"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".ae.pt.") and leftovers[0].suffix == ".tmp"
    with pytest.raises(memad.CheckpointError, match="truncated or corrupt"):
        read_checkpoint(leftovers[0])  # what a non-atomic save would have left in place of the good file


def test_saved_checkpoint_is_readable_by_others(tmp_path):
    """Checkpoints are shared: the temporary file's private mode must not stick to the final file."""
    path = tmp_path / "ae.pt"
    _good_checkpoint(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_next_run_removes_half_written_saves(tmp_path):
    """What a save killed mid-write leaves behind is removed when training starts in that folder again."""
    from memad.data.synthetic import SyntheticSpec, make_synthetic

    stale = tmp_path / ".checkpoint.pt.0123456789ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".notes.tmp"
    other.write_text("not ours")
    train = make_synthetic("training", (32, 32), 3, 32, SyntheticSpec(train_videos=1, frames_per_video=8))
    memad.build("ae", **tiny(train={"max_steps_per_epoch": 1})).fit(train, out=tmp_path)
    assert not stale.exists() and other.exists()
    assert read_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
