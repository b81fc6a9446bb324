"""test.anchor: after each test-time write the memory is pulled a share of the way back to the trained
state, the same offline, in a stream and in an export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.scoring.step import anchor_memory, step_signals, trained_state

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


def _det(anchor: float) -> memad.Detector:
    # No gate: every clip is written (the gate would keep these random clips out).
    det = memad.build("mnad_pred", **tiny(test={"anchor": anchor, "amp": False, "channels_last": False},
                                          memory={"gate": None}))
    det.network.eval()
    return det


def _clips(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 5, 3, 32, 32), generator=g) * 2 - 1


def test_the_pull_is_the_share_asked_of_the_way_back():
    det = _det(0.0)
    memory = det.network.memory
    trained = trained_state(det.network)
    moved = torch.nn.functional.normalize(torch.randn_like(memory.items), dim=1)
    memory.items = moved.clone()
    anchor_memory(memory, trained, 0.3)
    torch.testing.assert_close(memory.items, moved + 0.3 * (trained["items"] - moved))
    anchor_memory(memory, trained, 1.0)
    torch.testing.assert_close(memory.items, trained["items"])


def test_one_write_with_anchor_is_the_plain_write_pulled_back():
    plain, anchored = _det(0.0), _det(0.25)
    trained = trained_state(plain)
    clips = _clips(1)
    step_signals(plain.network, clips)
    step_signals(anchored.network, clips, trained=trained)
    written = plain.network.memory.items
    assert not torch.allclose(written, trained["items"])  # the write moved the items
    torch.testing.assert_close(anchored.network.memory.items, written + 0.25 * (trained["items"] - written))


def test_the_drift_over_a_long_run_of_writes_stays_bounded_and_shrinks_with_the_anchor():
    drift = {}
    for rate in (0.0, 0.05, 0.5):
        det = _det(rate)
        trained = trained_state(det.network)
        worst = 0.0
        for k in range(40):  # clips far from anything trained: every write pulls the items away
            step_signals(det.network, _clips(1, seed=k) * 3, trained=trained)
            worst = max(worst, float((det.network.memory.items - trained["items"]).norm(dim=1).max()))
        drift[rate] = worst
    assert drift[0.5] < drift[0.05] < drift[0.0]
    # Each write moves an item by at most 2 (unit vectors) and the pull keeps (1 - a) of what is left:
    # the distance is at most (1 - a) * 2 * sum (1 - a)^k = 2 (1 - a) / a.
    assert drift[0.5] <= 2 * 0.5 / 0.5 + 1e-6


def test_scoring_and_streaming_apply_the_anchor_alike(tmp_path):
    det = memad.build("mnad_pred", **tiny(test={"anchor": 0.1, "amp": False, "channels_last": False},
                                          train={"max_steps_per_epoch": 3}, memory={"gate": None}))
    fit_and_calibrate(det, SPEC)
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    video = test.video(1)
    offline = det.score(video).calibrated
    streamed = np.array([r.score for r in det.stream(list(video.frames))])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    # and the anchor changes the scores: without it the same weights score otherwise
    free = memad.load(det.save(tmp_path / "d.pt"), overrides={"test.anchor": 0.0})
    assert not np.allclose(free.score(video).scores, det.score(video).scores)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_pulls_its_state_back_as_pytorch_does(fmt, tmp_path):
    pytest.importorskip("onnxruntime")
    det = memad.build("mnad_pred", **tiny(test={"anchor": 0.2, "amp": False, "channels_last": False},
                                          train={"max_steps_per_epoch": 3}, memory={"gate": None}))
    fit_and_calibrate(det, SPEC)
    report = det.export(tmp_path / f"a.{fmt}", fmt, frames=30)
    assert report["max_abs_score_difference"] <= 1e-4
