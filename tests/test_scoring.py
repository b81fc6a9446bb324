"""The test-time gate (eq. 6-7), scorers, metrics and the two test modes."""

import math

import numpy as np
import pytest
import torch

import memad
from memad.interfaces import FrameStats, normalise_per_group
from memad.metrics import frame_metrics
from memad_plugins.mnad.memory import regular_score
from memad_plugins.scorers.scorers import PSNRScorer, WeightedScorer

from .conftest import tiny


def test_regular_score_by_hand():
    target = torch.zeros(1, 1, 1, 3)  # 0.5 in [0, 1]
    output = torch.tensor([[[[1.0, 0.0, -0.6]]]])  # errors 0.5, 0, -0.3 in [0, 1]
    e = [0.25, 0.0, 0.09]
    w = [1 - math.exp(-x) for x in e]
    expected = sum(a * b for a, b in zip(w, e)) / sum(w)
    assert regular_score(output, target).item() == pytest.approx(expected, rel=1e-5)


def test_weighted_scorer_matches_the_paper_formula():
    stats = FrameStats(video=np.array([0, 0, 0, 1, 1]), psnr=np.array([30.0, 20.0, 25.0, 10.0, 12.0]),
                       mse=np.zeros(5), distance=np.array([0.1, 0.3, 0.2, 0.5, 0.4]))
    # per video: g(psnr) = [1, 0, .5] and [0, 1]; g(D) = [0, 1, .5] and [1, 0]
    normality = 0.6 * np.array([1, 0, 0.5, 0, 1]) + 0.4 * (1 - np.array([0, 1, 0.5, 1, 0]))
    assert WeightedScorer(0.6)(stats) == pytest.approx(1 - normality)
    assert PSNRScorer()(stats) == pytest.approx(1 - np.array([1, 0, 0.5, 0, 1]))


def test_normalise_per_group_constant_group_is_zero():
    assert normalise_per_group(np.array([2.0, 2.0, 1.0, 3.0]), np.array([0, 0, 1, 1])).tolist() == [0, 0, 0, 1]


def test_frame_metrics_pooled_differs_from_macro():
    # each video separates perfectly, but the pooled ranking mixes them
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    labels = np.array([0, 1, 0, 1])
    video = np.array([0, 0, 1, 1])
    m = frame_metrics(scores, labels, video)
    assert m["frame_auroc_macro"] == 1.0
    assert m["frame_auroc"] == pytest.approx(0.75)  # pairs (neg, pos): 4 in all, (0.8 > 0.2) wrong once
    assert 0 <= m["eer"] <= 1


def test_frame_metrics_refuses_nan():
    with pytest.raises(memad.NumericalError, match="NaN"):
        frame_metrics(np.array([0.1, np.nan]), np.array([0, 1]), np.array([0, 0]))


@pytest.fixture(scope="module")
def trained_pred():
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 10}))
    return det.fit("synthetic")


def test_gate_controls_test_time_writes(trained_pred):
    """The gate is the memory's own test-time protocol (memory.gate), not the core's."""
    det = trained_pred
    before = det.memory.items.clone()
    det.memory.gate = 0.0  # no frame's score is below 0: nothing is written
    closed = det.score("synthetic")
    det.memory.gate = None  # every frame is written
    opened = det.score("synthetic")
    det.config["test"]["update"] = False
    frozen = det.score("synthetic")
    det.config["test"]["update"] = True
    det.memory.gate = 0.01
    assert np.allclose(closed.stats.distance, frozen.stats.distance)
    assert not np.allclose(opened.stats.distance, frozen.stats.distance)
    assert torch.equal(det.memory.items, before)  # scoring restores the trained memory


def test_test_write_applies_the_gate_per_frame():
    """memory.test_write keeps exactly the frames whose eq. 6-7 score is below the gate."""
    det = memad.build("mnad_pred", **tiny(memory={"gate": 0.05}))
    memory = det.memory
    query = torch.nn.functional.normalize(torch.randn(2, memory.dim, 2, 2, generator=torch.Generator().manual_seed(0)),
                                          dim=1)
    target = torch.zeros(2, 3, 4, 4)
    output = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])  # error 0 (kept) and 0.25 in [0, 1] (gated)
    before = memory.items.clone()
    memory.test_write(memad.MemoryOutput(read=query, loss=torch.zeros(()), query=query), output, target)
    torch.testing.assert_close(memory.items, memory.update_rule(before, memory._flat(query[:1])))


def test_prediction_skips_first_frames_and_modes_agree_without_writes(trained_pred):
    det = trained_pred
    det.config["test"]["update"] = False
    try:
        seq = det.score("synthetic")
        det.config["test"]["mode"] = "batched"
        bat = det.score("synthetic")
    finally:
        det.config["test"].update(update=True, mode="sequential")
    assert np.allclose(seq.scores, bat.scores, atol=1e-5)
    first = {int(v): int(f) for v, f in zip(seq.video[::-1], seq.frame[::-1])}
    offsets = np.concatenate([[0], np.cumsum([60] * 7)])
    assert all(first[v] == offsets[v] + 4 for v in first)  # frames 0-3 of each video have no score


def test_score_video_tensor_marks_unscored_frames(trained_pred):
    frames = torch.randint(0, 255, (9, 3, 32, 32), dtype=torch.uint8)
    scores = trained_pred.score_video(frames)
    assert np.isnan(scores[:4]).all() and np.isfinite(scores[4:]).all()
