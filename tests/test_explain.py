"""Memory explanations against hand-computed cases: the assignment and distance maps of tiny memories,
the crop the receptive-field rule names on a hand-made frame, usage counts that add up to the query
positions, the per-item exemplar bank against a brute force, and the message of a memory without explain."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import memad
from memad.data import VideoSet
from memad.explanation import explain_nearest
from memad.interfaces import LevelExplanation
from memad.scoring.profile import ReadProfile
from memad.scoring.reads import crop_cells, crop_window
from memad.training.health import MemoryHealth
from memad_plugins.dmad.codebook import Codebook
from memad_plugins.memae.memory import MemAEMemory
from memad_plugins.mnad.memory import PrototypeMemory

ITEMS = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
# Queries on a 2x2 grid, (row, col): their nearest item by cosine, worked out by hand.
QUERIES = {(0, 0): ([0.8, 0.6], 0), (0, 1): ([0.1, 0.9], 1), (1, 0): ([-3.0, 1.0], 2), (1, 1): ([0.6, -0.8], 0)}


def _grid(queries: dict) -> torch.Tensor:
    f = torch.zeros(1, 2, 2, 2)
    for (i, j), (q, _) in queries.items():
        f[0, :, i, j] = torch.tensor(q)
    return f


def test_mnad_assignment_and_distance_are_the_nearest_item_by_hand():
    mem = PrototypeMemory(in_channels=2, items=3)
    mem.items = torch.tensor(ITEMS)
    (e,) = mem.explain(_grid(QUERIES))
    for (i, j), (q, item) in QUERIES.items():
        assert e.assignment[0, i, j].item() == item
        unit = np.array(q) / np.linalg.norm(q)  # MNAD normalises its queries
        expected = ((unit - np.array(ITEMS[item])) ** 2).mean()
        assert e.distance[0, i, j].item() == pytest.approx(expected, abs=1e-6)
    # the runner-up of (0, 0) = (0.8, 0.6) is item 1: mean of (0.8, -0.4)^2
    assert e.runner_up[0, 0, 0].item() == pytest.approx((0.64 + 0.16) / 2, abs=1e-6)
    # the read weights: the softmax of the similarities, largest first
    sims = torch.tensor([0.8, 0.6, -0.8])
    assert e.weights[0, 0, 0].tolist() == pytest.approx(torch.softmax(sims, 0).tolist(), abs=1e-6)
    assert e.weight_items[0, 0, 0].tolist() == [0, 1, 2]
    # averaged over positions, the distance map is the memory's own distance signal
    assert mem(_grid(QUERIES)).distance.item() == pytest.approx(e.distance.mean().item(), abs=1e-6)


def test_codebook_assignment_is_the_nearest_item_in_l2_by_hand():
    book = Codebook(in_channels=2, items=3)
    with torch.no_grad():
        book.items.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
    f = torch.tensor([[0.9, 0.2], [1.1, 2.0]]).t().reshape(1, 2, 1, 2)  # queries (0.9, 0.2) and (1.1, 2.0)
    (e,) = book.explain(f)
    # (0.9, 0.2): |.|^2 to the items 0.85, 1.25, 8.65 -> 0; (1.1, 2.0): 5.21, 4.81, 2.21 -> 2
    assert e.assignment.tolist() == [[[0, 2]]]
    assert e.distance[0, 0].tolist() == pytest.approx([0.85 / 2, 2.21 / 2], abs=1e-6)
    assert e.weights is None


def test_memae_assignment_is_the_largest_read_weight():
    mem = MemAEMemory(in_channels=2, items=3, shrink=0.0)
    with torch.no_grad():
        mem.items.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    f = torch.tensor([[1.0, 0.0], [0.1, 0.5]]).t().reshape(1, 2, 1, 2)
    (e,) = mem.explain(f)
    # dot products (2, 0, -1) -> item 0; (0.2, 0.5, -0.6) -> item 1
    assert e.assignment.tolist() == [[[0, 1]]]
    assert e.distance[0, 0, 0].item() == pytest.approx(((1 - 2) ** 2 + 0) / 2)
    logits = torch.tensor([2.0, 0.0, -1.0])
    assert e.weights[0, 0, 0].tolist() == pytest.approx(torch.softmax(logits, 0).tolist(), abs=1e-6)


def test_per_input_items_are_each_inputs_own():
    e = explain_nearest(torch.tensor([[[[1.0]], [[0.0]]], [[[1.0]], [[0.0]]]]),
                        torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]), per_input=True)
    assert e.assignment.flatten().tolist() == [0, 1]  # the same query: the first input's item 0, the second's item 1
    assert e.per_input and e.items.shape == (2, 2, 2)


def _hand_frame(h: int = 16, w: int = 24) -> torch.Tensor:
    """A frame whose every pixel is distinct: value = (3 * (row * w + col) + channel) % 251 + 1."""
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([(3 * (r * w + c) + ch) % 251 + 1 for ch in range(3)]).to(torch.uint8)


@pytest.mark.parametrize("i,j", [(1, 2), (0, 0), (3, 5)])
def test_a_crop_is_the_cell_widened_by_half_a_cell_zero_outside(i, j):
    frame, cell = _hand_frame(), (4, 4)
    top, left, h, w = crop_window(i, j, cell, 0.5)
    assert (top, left, h, w) == (4 * i - 2, 4 * j - 2, 8, 8)  # the rule: [i r - r/2, (i + 1) r + r/2)
    expected = torch.zeros(3, h, w, dtype=torch.uint8)
    for y in range(h):
        for x in range(w):
            if 0 <= top + y < 16 and 0 <= left + x < 24:
                expected[:, y, x] = frame[:, top + y, left + x]
    got = crop_cells(frame[None], torch.tensor([0]), torch.tensor([i]), torch.tensor([j]), cell, 0.5)[0]
    assert torch.equal(got, expected)


def test_the_atlas_keeps_the_crop_of_the_nearest_position_from_the_last_input_frame():
    frame = _hand_frame()
    x = torch.stack([torch.zeros(3, 16, 24), frame.float() / 127.5 - 1]).reshape(1, 6, 16, 24)  # 2 frames, C=3
    assignment = torch.zeros(1, 4, 6, dtype=torch.long)
    distance = torch.full((1, 4, 6), 0.5)
    assignment[0, 2, 3], distance[0, 2, 3] = 1, 0.1  # item 1's only position, and item 0's nearest:
    distance[0, 1, 4] = 0.01
    e = LevelExplanation(assignment, distance, torch.zeros(2, 2), cell=(4, 4), level=3)
    profile = ReadProfile(channels=3, k=2)
    profile(x, [e])
    lp = profile.finish().levels[0]
    assert lp.best_src[1, 0].tolist() == [0, 0, 2, 3] and not math.isfinite(lp.best_d[1, 1])
    assert lp.best_src[0, 0].tolist() == [0, 0, 1, 4] and lp.best_d[0].tolist() == pytest.approx([0.01, 0.5])
    top, left, h, w = crop_window(2, 3, (4, 4))
    assert torch.equal(lp.best_patch[1, 0], frame[:, top:top + h, left:left + w])
    assert int(lp.usage.sum()) == 24 and lp.usage.tolist() == [23, 1]


def test_the_exemplar_bank_keeps_each_items_k_nearest_over_batches():
    gen = torch.Generator().manual_seed(0)
    profile = ReadProfile(channels=1, k=3, crops=False)
    seen: dict[int, list[float]] = {m: [] for m in range(5)}
    for _ in range(6):
        a = torch.randint(0, 5, (2, 3, 4), generator=gen)
        d = torch.rand(2, 3, 4, generator=gen)
        profile(torch.zeros(2, 1, 12, 16), [LevelExplanation(a, d, torch.zeros(5, 2), cell=(4, 4))])
        for m, v in zip(a.flatten().tolist(), d.flatten().tolist()):
            seen[m].append(v)
    lp = profile.finish().levels[0]
    for m in range(5):
        best = sorted(seen[m])[:3]
        assert lp.best_d[m, :len(best)].tolist() == pytest.approx(best)
    assert int(lp.usage.sum()) == 6 * 2 * 12  # every query position counted once
    assert lp.usage.tolist() == [len(seen[m]) for m in range(5)]


def test_a_memory_without_explain_says_so():
    det = memad.build("ae", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
    with pytest.raises(memad.ConfigError) as err:
        det.memory.explain(torch.zeros(1, 64, 2, 2))
    assert str(err.value) == "memory 'none' (memad 0.1.0) does not explain its reads: it has no explain()"
    with pytest.raises(memad.ConfigError, match="memory 'none' .* does not explain its reads"):
        memad.explain(det, "synthetic")


def _small_videos(n_videos: int = 2, frames: int = 12, side: int = 32) -> VideoSet:
    gen = torch.Generator().manual_seed(1)
    data = torch.randint(0, 255, (n_videos * frames, 3, side, side), generator=gen, dtype=torch.uint8)
    labels = np.zeros(n_videos * frames, dtype=np.int64)
    labels[frames - 4:frames] = 1
    return VideoSet(data, [f"v{i}" for i in range(n_videos)], [frames] * n_videos, labels=labels, source="hand-made")


def test_explain_end_to_end_crops_and_counts_match_the_frames(tmp_path):
    # crops are cut from the network's input: with the frames as read, that is the frames themselves
    det = memad.build("mnad_pred", data={"image_size": 32, "normalise": "none"}, encoder={"widths": [8, 16, 32, 64]},
                      train={"device": "cpu"}, memory={"items": 4})
    videos = _small_videos()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = memad.explain(det, videos, k=3, top=2)
    (lv,) = result.levels
    clips = sum(n - det.clip_length + 1 for n in videos.lengths)
    positions = int(np.prod(lv.grid))
    assert lv.grid == (4, 4) and lv.cell == (8, 8) and result.train_samples == clips
    assert lv.train.positions == clips * positions  # usage counts sum to the query positions
    assert sum(u.positions for u in lv.test_usage.values()) == len(result.scores.frame) * positions
    for m in range(lv.num_items):
        for n, src in enumerate(lv.exemplar_source[m]):  # every crop is the frame region its source names
            v = videos.names.index(src["video"])
            frame = videos.frames[int(videos.offsets[v]) + src["frame"]]
            top, left, h, w = src["box"]
            expected = torch.zeros(3, h, w, dtype=torch.uint8)
            t0, l0 = max(top, 0), max(left, 0)
            expected[:, t0 - top:min(top + h, 32) - top, l0 - left:min(left + w, 32) - left] = \
                frame[:, t0:min(top + h, 32), l0:min(left + w, 32)]
            assert torch.equal(torch.from_numpy(lv.exemplars[m, n]), expected)
    files = result.write(tmp_path)
    assert {"atlas", "usage", "usage_timeline", "geometry", "json"} <= set(files) and len(files["frames"]) == 2
    summary = __import__("json").loads((tmp_path / "explain.json").read_text())
    assert summary["levels"][0]["training"]["positions"] == clips * positions
    assert summary["receptive_field"].startswith("a query at grid position ``(i, j)``")


def test_training_records_item_health_and_warns_when_most_items_are_dead():
    det = memad.build("mnad_pred", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
    net = det.network.train()
    health = MemoryHealth(net)
    try:
        with torch.no_grad():
            # positive queries, item 0 along (1, ..., 1) and the nine others opposite: all read item 0
            u = torch.nn.functional.normalize(torch.ones(1, 64), dim=1)
            net.memory.items = torch.cat([u, -u.expand(9, -1)])
            net.memory(torch.rand(2, 64, 2, 2) + 0.1)  # a training read (the hook counts what the memory gets)
        with pytest.warns(RuntimeWarning, match="9 of 10 items were read by no training query"):
            record = health.epoch(1)
    finally:
        health.close()
    assert record == {"effective_items": 1.0, "dead_items": 0.9}


def test_distinct_exemplars_are_each_items_nearest_positions():
    gen = torch.Generator().manual_seed(2)
    profile = ReadProfile(channels=1, k=3, crops=False, distinct=True)
    best: dict[tuple[int, int], float] = {}
    for _ in range(5):
        a = torch.randint(0, 3, (3, 2, 2), generator=gen)
        d = torch.rand(3, 2, 2, generator=gen)
        profile(torch.zeros(3, 1, 8, 8), [LevelExplanation(a, d, torch.zeros(3, 2), cell=(4, 4))])
        for (b, i, j), m in np.ndenumerate(a.numpy()):
            key = (m, i * 2 + j)
            best[key] = min(best.get(key, np.inf), float(d[b, i, j]))
    lp = profile.finish().levels[0]
    for m in range(3):
        expected = sorted(v for (item, _), v in best.items() if item == m)[:3]
        assert lp.best_d[m, :len(expected)].tolist() == pytest.approx(expected)
        positions = [(int(s[2]), int(s[3])) for s in lp.best_src[m] if s[0] >= 0]
        assert len(positions) == len(set(positions))  # one exemplar per grid position


def test_distances_taken_in_chunks_equal_the_whole(monkeypatch):
    import memad.explanation as explanation

    gen = torch.Generator().manual_seed(3)
    q, items = torch.randn(2, 4, 5, 6, generator=gen), torch.randn(7, 4, generator=gen)
    whole = explain_nearest(q, items)
    monkeypatch.setattr(explanation, "CHUNK", 20)  # 20 pairs: one position of each of the two samples at a time
    parts = explain_nearest(q, items)
    assert torch.equal(parts.assignment, whole.assignment)
    assert torch.allclose(parts.distance, whole.distance) and torch.allclose(parts.runner_up, whole.runner_up)
    brute = ((q.movedim(1, -1)[..., None, :] - items) ** 2).mean(-1)  # (B, h, w, M)
    assert torch.equal(whole.assignment, brute.argmin(-1))
    assert torch.allclose(whole.distance, brute.min(-1).values, atol=1e-6)
