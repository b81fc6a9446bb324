"""Checkpoints of the first release (version 1) load: their config is moved to today's form."""

from __future__ import annotations

import pytest
import torch

import memad
from memad.checkpoint import FORMAT, VERSION, read_checkpoint

from .conftest import tiny


def _version_1(det: memad.Detector) -> dict:
    """A checkpoint as the first release wrote it: the gate in ``test``, ``amp: true``, no calibration."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in det.config.items()}
    gate = config["memory"].pop("gate")
    config["test"]["gate"] = gate
    config["test"].pop("score_frame")
    config["train"]["amp"] = True
    return {"format": FORMAT, "version": 1, "config": config, "model": det.state_dict(), "threshold": 0.5,
            "history": [{"epoch": 1, "loss": 0.1}]}


def test_a_version_1_checkpoint_loads_with_its_gate_on_the_memory(tmp_path):
    det = memad.build("mnad_pred", **tiny(memory={"gate": 0.02}))
    path = tmp_path / "v1.pt"
    torch.save(_version_1(det), path)
    loaded = memad.load(path)
    assert loaded.memory.gate == 0.02 and loaded.config["memory"]["gate"] == 0.02
    assert "gate" not in loaded.config["test"]
    assert loaded.config["train"]["amp"] == "auto"  # v1's `true` meant bf16 on CUDA only
    assert loaded.threshold_ == 0.5 and loaded.calibration_ is None
    for name, value in det.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    assert read_checkpoint(path)["version"] == VERSION  # upgraded as read; the file itself is untouched
    assert torch.load(path, weights_only=True)["version"] == 1


def test_a_newer_checkpoint_is_refused_with_the_versions(tmp_path):
    det = memad.build("ae", **tiny())
    path = det.save(tmp_path / "ae.pt")
    data = torch.load(path, weights_only=True)
    data["version"] = VERSION + 1
    torch.save(data, path)
    with pytest.raises(memad.CheckpointError, match=f"version {VERSION + 1} is newer than this memad"):
        memad.load(path)


def test_a_version_2_checkpoint_keeps_the_frames_as_read(tmp_path):
    """Version 2 had no data.normalise: its network was trained on the frames as read, not on clips scaled
    by their own statistics (today's default), and must be fed them still."""
    det = memad.build("ae", **tiny(data={"normalise": "none"}))
    path = det.save(tmp_path / "ae.pt")
    data = torch.load(path, weights_only=True)
    data["config"]["data"].pop("normalise")
    data["version"] = 2
    torch.save(data, path)
    loaded = memad.load(path)
    assert loaded.config["data"]["normalise"] == "none"
    clip = torch.rand(1, 1, 3, 32, 32) * 2 - 1
    x, _ = loaded.split_clip(clip)
    torch.testing.assert_close(x, clip[:, 0])  # untouched
    assert memad.build("ae", **tiny()).config["data"]["normalise"] == "clip"  # what it would get otherwise
