"""MemAE memory against a hand-computed case, any spatial rank, and the MemAE autoencoders."""

import math

import numpy as np
import pytest
import torch

import memad
import memad.data
from memad_plugins.memae.memory import MemAEMemory, attention_entropy, hard_shrink_relu, sparse_address

from .conftest import tiny

ITEMS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
QUERIES = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.5, -1.0]])


def _hand_weights(shrink: float) -> list[list[float]]:
    """Softmax of dot products, shrinkage and L1 renormalisation, written out per query."""
    out = []
    for z in QUERIES.tolist():
        logits = [z[0] * p[0] + z[1] * p[1] for p in ITEMS.tolist()]
        exps = [math.exp(v) for v in logits]
        w = [e / sum(exps) for e in exps]
        kept = [v if v > shrink else 0.0 for v in w]  # hard shrinkage keeps w (up to eps) above the threshold
        out.append([v / sum(kept) for v in kept])
    return out


def _memory(shrink: float, entropy: float = 0.0002, addressing: str = "dot") -> MemAEMemory:
    mem = MemAEMemory(in_channels=2, items=3, shrink=shrink, entropy=entropy, addressing=addressing)
    with torch.no_grad():
        mem.items.copy_(ITEMS)
    return mem


def test_hard_shrinkage_formula():
    w = torch.tensor([0.5, 0.0026, 0.0025, 0.001, 0.0])
    out = hard_shrink_relu(w, 0.0025)
    assert out[0] == pytest.approx(0.5, abs=1e-9)
    assert out[1] == pytest.approx(0.0026, rel=1e-6)  # just above: kept as it is
    assert out[2:].tolist() == [0.0, 0.0, 0.0]  # at or below: zeroed


def test_addressing_shrinkage_and_renormalisation_hand_case():
    # For query (2, 0) the weights are (0.867, 0.117, 0.0159); 0.05 cuts the third.
    expected = torch.tensor(_hand_weights(0.05))
    assert expected[0, 2] == 0 and expected[1].tolist() == pytest.approx([1 / 3] * 3)
    weights = sparse_address(QUERIES, ITEMS, 0.05)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)
    assert weights.sum(1).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_read_and_entropy_loss_hand_case():
    w = _hand_weights(0.05)
    mem = _memory(shrink=0.05, entropy=0.0002)
    # Queries as a (B=1, C=2, h=1, w=3) map: one query per position.
    out = mem(QUERIES.t().reshape(1, 2, 1, 3))
    read = out.read.reshape(2, 3).t()
    expected_read = [[row[0] * 1 + row[2] * -1, row[1]] for row in w]
    torch.testing.assert_close(read, torch.tensor(expected_read), atol=1e-6, rtol=0)
    entropy = sum(-sum(v * math.log(v) for v in row if v > 0) for row in w) / 3
    assert out.logs["entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert out.loss.item() == pytest.approx(0.0002 * entropy, rel=1e-5)
    assert out.distance is None and out.query is None


def test_no_shrinkage_is_the_plain_softmax():
    weights = sparse_address(QUERIES, ITEMS, 0.0)
    torch.testing.assert_close(weights, torch.softmax(QUERIES @ ITEMS.t(), dim=1))


def test_cosine_addressing_ignores_norms():
    scaled = ITEMS * torch.tensor([[3.0], [0.5], [2.0]])
    cos = sparse_address(QUERIES[[0, 2]], scaled, 0.0, "cosine")
    unit_q = QUERIES[[0, 2]] / QUERIES[[0, 2]].norm(dim=1, keepdim=True)
    torch.testing.assert_close(cos, torch.softmax(unit_q @ ITEMS.t(), dim=1))
    assert not torch.allclose(cos, sparse_address(QUERIES[[0, 2]], scaled, 0.0, "dot"))


def test_entropy_of_one_hot_and_uniform():
    assert attention_entropy(torch.tensor([[1.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-9)
    assert attention_entropy(torch.full((2, 4), 0.25)).item() == pytest.approx(math.log(4), rel=1e-6)


@pytest.mark.parametrize("shape", [(2, 6, 3, 4), (2, 6, 2, 3, 4)])
def test_any_spatial_rank_reads_per_position(shape):
    torch.manual_seed(0)
    mem = MemAEMemory(in_channels=6, items=5, shrink=0.1)
    feats = torch.randn(shape)
    out = mem(feats)
    assert out.read.shape == feats.shape
    queries = feats.movedim(1, -1).reshape(-1, 6)
    expected = (sparse_address(queries, mem.items, 0.1) @ mem.items).reshape(*feats.movedim(1, -1).shape)
    torch.testing.assert_close(out.read, expected.movedim(-1, 1))
    (out.read.sum() + out.loss).backward()
    assert mem.items.grad is not None and mem.items.grad.abs().sum() > 0  # learned by gradient


def test_memory_rejects_wrong_feature_dimension():
    with pytest.raises(ValueError, match=r"expected features \(B, 6"):
        MemAEMemory(in_channels=6, items=5)(torch.randn(1, 4, 2, 2))


@pytest.mark.parametrize("field, value, match", [
    ("shrink", 1.5, "memory.shrink"), ("entropy", -1.0, "memory.entropy"), ("addressing", "l2", "memory.addressing"),
])
def test_bad_memory_settings_are_named(field, value, match):
    with pytest.raises(memad.ConfigError, match=match):
        memad.build("memae2d", **tiny(memory={field: value}))


def _memae3d(**extra):
    return memad.build("memae", **tiny(data={"frames": 8, "channels": 3}, encoder={"widths": [8, 16, 32, 32]},
                                       memory={"items": 20}, **extra))


def test_memae3d_paper_shapes():
    det = memad.build("memae", data={"image_size": 64})  # the paper's widths and 16-frame clips
    assert det.memory.items.shape == (2000, 256)
    feats = det.encoder(torch.randn(1, 16, 64, 64))
    assert [f.shape[1:] for f in feats] == [(96, 16, 32, 32), (128, 8, 16, 16), (256, 4, 8, 8), (256, 2, 4, 4)]
    assert det.encoder.reductions == [2, 4, 8, 16]


def test_memae3d_unstacks_and_restacks_frames_in_order():
    det = _memae3d().eval()
    seen = {}
    # (A forward hook that returns a value replaces the output: these return None.)
    det.encoder.stages[0][0].register_forward_hook(lambda m, inp, out: seen.update(into=inp[0]))
    det.decoder.head.register_forward_hook(lambda m, inp, out: seen.update(out=out))
    x = torch.randn(2, 8 * 3, 32, 32)
    y = det(x).output
    assert y.shape == x.shape
    frames_in = x.view(2, 8, 3, 32, 32)
    frames_out = y.view(2, 8, 3, 32, 32)
    for t in (0, 5, 7):
        torch.testing.assert_close(seen["into"][:, :, t], frames_in[:, t])  # clip (B, C, T, H, W)
        torch.testing.assert_close(seen["out"][:, :, t], frames_out[:, t])


def test_memae3d_clip_and_size_are_checked():
    with pytest.raises(memad.ConfigError, match="data.frames=6.*multiple of 8"):
        _memae3d(**{"data.frames": 6})
    with pytest.raises(memad.ConfigError, match="data.image_size=40.*multiple of 16"):
        _memae3d(**{"data.image_size": 40})
    with pytest.raises(memad.ConfigError, match="task: reconstruction"):
        _memae3d(task="prediction")


def test_memae_items_move_by_gradient_in_a_training_step():
    det = _memae3d(train={"max_steps_per_epoch": 1, "scheduler": "constant"})
    before = det.memory.items.detach().clone()
    det.fit("synthetic")
    assert not torch.allclose(before, det.memory.items.detach())
    assert det.history_[0]["memory"] > 0  # the entropy loss was part of the objective


# -- scoring as the official MemAE code ---------------------------------------------------------
def test_clip_error_is_the_mean_over_pixels_of_the_residual_norm_across_channels():
    det = memad.build("memae", **tiny(data={"frames": 16, "channels": 3},
                                      encoder={"widths": [4, 4, 4, 4]}, memory={"items": 8}))
    decoder = det.decoder
    target = torch.zeros(2, 16 * 3, 32, 32)
    output = torch.zeros(2, 16 * 3, 32, 32)
    # clip 0: one pixel of frame 5 off by (3, 4, 0) across the channels: its norm is 5, every other is 0
    output[0, 5 * 3:5 * 3 + 3, 7, 9] = torch.tensor([3.0, 4.0, 0.0])
    # clip 1: every pixel of every frame off by 1 in its first channel only: every norm is 1
    output[1, 0::3] = 1.0
    errors = decoder.target_signals(output, target)["clip_error"]
    torch.testing.assert_close(errors, torch.tensor([5.0 / (16 * 32 * 32), 1.0]))


def test_a_clip_scores_its_centre_frame_start_plus_8():
    """The official code gives a 16-frame clip's score to frame start + 8, not to the clip's last frame."""
    det = memad.build("memae", **tiny(data={"frames": 16}, encoder={"widths": [4, 4, 4, 4]}, memory={"items": 8},
                                      test={"mode": "batched", "amp": False}))  # fp32, as the reference below
    frames = torch.randint(0, 256, (20, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    scores = det.score(memad.data.VideoSet(frames, ["v"], [20], source="frames"))
    assert det.score_offset == 8
    assert scores.frame.tolist() == [8, 9, 10, 11, 12]  # 5 clips (starts 0..4), each scoring its frame 8
    # each frame's score is the regularity of its clip's error: the clip starting 8 frames before it
    clips = torch.stack([frames[s:s + 16] for s in range(5)]).float() / 127.5 - 1
    x, y = det.split_clip(clips)
    det.eval()  # scoring runs the model in eval mode (BatchNorm's running statistics)
    with torch.no_grad():
        expected = det.decoder.target_signals(det(x).output, y)["clip_error"].double().numpy()
    np.testing.assert_allclose(scores.stats["clip_error"], expected, rtol=1e-5)
    np.testing.assert_allclose(scores.scores, (expected - expected.min()) / (expected.max() - expected.min()),
                               rtol=1e-5, atol=1e-7)
