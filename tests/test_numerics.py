"""Numerical faults stop the run with a message that says where (epoch/step, or video/frame), instead
of writing a NaN AUROC. The faults are injected: a registered test memory whose loss turns NaN or inf,
a forward pass that returns NaN for one frame, a scorer that returns NaN for one frame."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import memad
from memad import DataError, Memory, MemoryOutput, NumericalError, Scorer
from memad.checkpoint import read_checkpoint
from memad.data import VideoSet
from memad.metrics import frame_metrics

from .conftest import tiny

STEPS = 3  # train.max_steps_per_epoch in these tests


class LossTurnsBad(Memory):
    """No memory at all, but its loss becomes ``bad_value`` from the ``after``-th training call on."""

    def __init__(self, in_channels: int, after: int = 0, bad_value: float = math.nan):
        super().__init__()
        self.after, self.bad_value, self.calls = after, bad_value, 0

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features) -> MemoryOutput:
        loss = features.new_zeros(()) + 0 * features.mean()
        if self.training:  # counts training steps
            self.calls += 1
            if self.calls > self.after:
                loss = loss + self.bad_value
        return MemoryOutput(read=features, loss=loss)


class NaNForOneFrame(Scorer):
    """PSNR scores, except that scored frame ``index`` gets NaN."""

    def __init__(self, index: int = 0):
        self.index = index

    def __call__(self, stats):
        out = -np.asarray(stats.psnr, dtype=np.float64)
        out[self.index] = np.nan
        return out


@pytest.fixture(scope="module", autouse=True)
def registered():
    reg = memad.get_registry()
    reg.add("memory", "test_loss_turns_bad", LossTurnsBad)
    reg.add("scorer", "test_nan_for_one_frame", NaNForOneFrame)
    yield
    reg.unregister("memory", "test_loss_turns_bad")
    reg.unregister("scorer", "test_nan_for_one_frame")


def _two_videos(frames: int = 6) -> VideoSet:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (2 * frames, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = np.tile(np.r_[np.zeros(frames // 2), np.ones(frames - frames // 2)], 2).astype(np.int8)
    return VideoSet(data, ["a", "b"], [frames, frames], labels=labels, source="two videos")


def _detector(**memory):
    return memad.build("ae", **tiny(train={"max_steps_per_epoch": STEPS, "epochs": 3, "holdout": 0.0},
                                    memory={"name": "test_loss_turns_bad", **memory}))


# -- training -----------------------------------------------------------------------------------
def test_nan_loss_stops_training_and_says_where(tmp_path):
    det = _detector(after=STEPS + 1)  # the second step of epoch 2 is the first bad one
    with pytest.raises(NumericalError, match=re.escape(f"total loss became nan in epoch 2 by step {STEPS}")):
        det.fit(_two_videos(), out=tmp_path)
    kept = read_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["epoch"] == 1  # the bad epoch never replaced the last good checkpoint
    assert all(torch.isfinite(t).all() for t in kept["model"].values() if t.is_floating_point())
    assert not (tmp_path / "history.json").exists()


def test_infinite_loss_stops_training():
    det = _detector(after=0, bad_value=math.inf)
    with pytest.raises(NumericalError, match=re.escape(f"total loss became inf in epoch 1 by step {STEPS}")):
        det.fit(_two_videos())


def test_finite_loss_trains(tmp_path):
    """The control: the same memory with a finite loss trains through all epochs."""
    det = _detector(after=10**6)
    det.fit(_two_videos(), out=tmp_path)
    assert [h["epoch"] for h in det.history_] == [1, 2, 3]
    assert all(math.isfinite(h["loss"]) for h in det.history_)


# -- evaluation ---------------------------------------------------------------------------------
def test_nan_output_for_one_frame_names_video_and_frame(monkeypatch):
    det = memad.build("ae", **tiny(test={"chunk": 1}))  # one frame per forward pass
    forward = det.network.forward
    calls = {"n": 0}

    def nan_on_ninth_frame(x):
        out = forward(x)
        calls["n"] += 1
        if calls["n"] == 9:  # video "b" (6 frames each), its frame 2
            out.output = torch.full_like(out.output, math.nan)
        return out

    monkeypatch.setattr(det.network, "forward", nan_on_ninth_frame)
    with pytest.raises(NumericalError, match=re.escape("mse is nan at video 'b' frame 2 (1 frames in all)")):
        det.evaluate(_two_videos())


def test_nan_score_names_video_and_frame():
    det = memad.build("ae", **tiny(scorer={"name": "test_nan_for_one_frame", "index": 7}))
    with pytest.raises(NumericalError, match=re.escape(
            "anomaly score is nan at video 'b' frame 1 (1 frames in all); scorer 'test_nan_for_one_frame'")):
        det.evaluate(_two_videos())


def test_metrics_refuse_nan_scores():
    with pytest.raises(NumericalError, match=re.escape("1 anomaly scores are NaN or infinite (first at scored "
                                                       "frame 2)")):
        frame_metrics(np.array([0.1, 0.9, np.nan, 0.3]), np.array([0, 1, 0, 1]), np.zeros(4, dtype=int))


def test_finite_scores_give_a_finite_auroc():
    """The control: without injected faults the same evaluation gives numbers."""
    metrics = memad.build("ae", **tiny()).evaluate(_two_videos())
    assert 0.0 <= metrics["frame_auroc"] <= 1.0


# -- float frames given directly --------------------------------------------------------------------
def test_nan_in_float_frames_is_refused():
    det = memad.build("ae", **tiny())
    frames = torch.zeros(5, 3, 32, 32)
    frames[3, 1, 4, 4] = math.nan
    with pytest.raises(DataError, match=re.escape("video: 1 values are NaN or infinite (first in frame 3)")):
        det.score_video(frames)


def test_float_frames_outside_their_range_are_refused():
    det = memad.build("ae", **tiny())
    frames = torch.linspace(0, 255, 5 * 3 * 32 * 32).reshape(5, 3, 32, 32)
    with pytest.raises(DataError, match=re.escape("video: float frames are read in [0, 1], got values from 0 to 255 "
                                                  "(pass float_range=(-1, 1) for the model's range)")):
        det.score_video(frames)
    with pytest.raises(DataError, match=re.escape("video: float frames are read in [-1, 1], got values from 0 to 255")):
        det.score_video(frames, float_range=(-1, 1))
