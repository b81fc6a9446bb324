"""One config line swaps the update rule, memory, encoder or scorer, and behaviour changes accordingly."""

import math

import numpy as np
import pytest
import torch

import memad
from memad.cli import main as cli_main
from memad.config import make_config
from memad.interfaces import normalise_per_group
from memad.training import write_memory

from .conftest import tiny

# Two items and three queries in the first two of 64 dimensions. Queries 1 and 2 are nearest
# item 0, query 3 nearest item 1; but query 1 is more similar to item 1 than query 3 is, so
# for item 1 the max over all queries (official code) differs from the max over its own (paper).
ITEMS_2D = [[1.0, 0.0], [0.0, 1.0]]
QUERIES_2D = [[1.0, 0.9], [1.0, -0.2], [-1.0, 0.5]]


def _unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _embed(rows, dim=64):
    out = torch.zeros(len(rows), dim)
    out[:, :2] = torch.tensor(rows)
    return out


def _hand_mnad_update(normalise: str) -> list[list[float]]:
    """Paper eq. 3-5 written out with loops over items and queries."""
    qs = [_unit(q) for q in QUERIES_2D]
    sims = [[q[0] * p[0] + q[1] * p[1] for p in ITEMS_2D] for q in qs]
    assign = [max(range(2), key=lambda m: s[m]) for s in sims]
    new = []
    for m, p in enumerate(ITEMS_2D):
        column = [math.exp(s[m]) for s in sims]
        v = [c / sum(column) for c in column]
        mine = [k for k in range(3) if assign[k] == m]
        denom = max(v) if normalise == "all" else max(v[k] for k in mine)
        moved = [p[i] + sum(v[k] / denom * qs[k][i] for k in mine) for i in range(2)]
        new.append(_unit(moved))
    return new


def _memory_after_write(update) -> torch.Tensor:
    det = memad.build("mnad_pred", **tiny(memory={"items": 2, "update": update}))
    mem = det.memory.train()
    mem.items = _embed(ITEMS_2D)
    features = _embed(QUERIES_2D).t().reshape(1, 64, 1, 3) * 3.0  # any scale: queries are normalised
    write_memory(mem, mem(features).query)  # one training step's write
    return mem.items[:, :2]


def test_update_rule_mnad_code_differs_from_mnad_on_the_same_inputs():
    paper = _memory_after_write("mnad")
    code = _memory_after_write("mnad_code")
    torch.testing.assert_close(paper, torch.tensor(_hand_mnad_update("assigned")), atol=1e-6, rtol=0)
    torch.testing.assert_close(code, torch.tensor(_hand_mnad_update("all")), atol=1e-6, rtol=0)
    torch.testing.assert_close(paper[0], code[0])  # item 0: its own query has the max anyway
    assert (paper[1] - code[1]).abs().max() > 1e-2  # item 1: the denominators differ


def test_update_rule_ema_moves_items_by_the_expected_amount():
    items = _memory_after_write({"name": "ema", "momentum": 0.5})
    q1, q2 = _unit(QUERIES_2D[0]), _unit(QUERIES_2D[1])
    mean = [(q1[i] + q2[i]) / 2 for i in range(2)]
    expected0 = _unit([0.5 * ITEMS_2D[0][i] + 0.5 * mean[i] for i in range(2)])
    q3 = _unit(QUERIES_2D[2])
    expected1 = _unit([0.5 * ITEMS_2D[1][i] + 0.5 * q3[i] for i in range(2)])
    torch.testing.assert_close(items, torch.tensor([expected0, expected1]), atol=1e-6, rtol=0)


def _cli_train(tmp_path, *sets: str) -> memad.Detector:
    args = ["train", "mnad_pred", "--data", "synthetic", "--out", str(tmp_path), "--epochs", "1",
            "--set", "data.image_size=32", "--set", "encoder.widths=[8,16,32,64]", "--set", "train.device=cpu",
            "--set", "train.max_steps_per_epoch=2", "--set", "train.progress=false"]
    for s in sets:
        args += ["--set", s]
    assert cli_main(args) == 0
    return memad.load(tmp_path / "checkpoint.pt")


def test_update_none_freezes_items_through_the_cli(tmp_path):
    initial = memad.build("mnad_pred", **tiny()).memory.items  # the seed fixes the initial items
    frozen = _cli_train(tmp_path / "none", "memory.update=none")
    assert frozen.config["memory"]["update"] == {"name": "none"}
    torch.testing.assert_close(frozen.memory.items, initial, atol=0, rtol=0)
    assert not frozen.memory.writes
    moved = _cli_train(tmp_path / "mnad")
    assert (moved.memory.items - initial).abs().max() > 1e-4


def test_memory_swap_to_memae():
    base = memad.build("mnad_pred", **tiny())
    swapped = memad.build("mnad_pred", **tiny(), memory="memae")
    assert type(swapped.memory).__name__ == "MemAEMemory"
    # A fresh section, complete with memae's own defaults: mnad's compactness, gate... dropped.
    assert swapped.config["memory"] == {"name": "memae", "items": 2000, "shrink": 0.0025, "entropy": 0.0002,
                                        "addressing": "dot"}
    assert swapped.memory.items.shape == (2000, 64) and swapped.memory.shrink == 0.0025
    # 2000 items on this small untrained bottleneck: weights near 1/2000, all under the threshold
    with pytest.warns(RuntimeWarning, match="every addressing weight is below memory.shrink"):
        swapped(torch.rand(2, 12, 32, 32) * 2 - 1)
    swapped = memad.build("mnad_pred", **tiny(), memory="memae", **{"memory.items": 50})
    # MNAD hands the decoder concat[query, read] (128 channels), MemAE its read alone (64)
    assert base.decoder.entry[0].in_channels == 128 and swapped.decoder.entry[0].in_channels == 64
    x = torch.rand(2, 12, 32, 32) * 2 - 1
    out = swapped(x)
    assert out.output.shape == (2, 3, 32, 32) and out.memory.distance is None
    assert out.memory.loss > 0  # the entropy term, where mnad's memory has compactness/separateness


def test_encoder_swap_to_timm_by_name():
    config = make_config("mnad_pred", {"encoder": "timm", "encoder.model": "convnext_atto", "data.image_size": 32})
    assert config["encoder"]["model"] == "convnext_atto" and "widths" not in config["encoder"]  # mnad_unet's dropped
    det = memad.build("mnad_pred", **{"encoder": "timm", "data.image_size": 32})
    assert det.encoder.channels == [64, 64, 128, 256, 512]  # timm's resnet18 default
    assert det.memory.items.shape == (10, 512)
    assert det(torch.zeros(2, 12, 32, 32)).output.shape == (2, 3, 32, 32)


def test_scorer_swap_changes_scores():
    det = memad.build("mnad_recon", **tiny(train={"max_steps_per_epoch": 2}, test={"mode": "batched"}))
    det.fit("synthetic")
    weighted = det.score("synthetic")
    psnr_det = memad.build("mnad_recon", **tiny(test={"mode": "batched"}), scorer="psnr")
    psnr_det.load_state_dict(det.state_dict())
    psnr = psnr_det.score("synthetic")
    np.testing.assert_allclose(psnr.stats.psnr, weighted.stats.psnr)  # same model, same statistics
    stats = psnr.stats
    g_psnr = normalise_per_group(stats.psnr, stats.video)
    np.testing.assert_allclose(psnr.scores, 1 - g_psnr)
    g_dist = normalise_per_group(stats.distance, stats.video)
    np.testing.assert_allclose(weighted.scores, 1 - (0.7 * g_psnr + 0.3 * (1 - g_dist)))
    assert np.abs(psnr.scores - weighted.scores).max() > 1e-3


@pytest.mark.parametrize("line, section, expected", [
    # A section is complete with the component's defaults (ema's momentum 0.99, the config's default).
    ("memory.update=ema", "memory", {"update": {"name": "ema", "momentum": 0.99}, "items": 10}),
    ("memory.update.normalise=all", "memory", {"update": {"name": "mnad", "normalise": "all"}}),
    ("scorer=regularity", "scorer", {"name": "regularity"}),
    ("memory=none", "memory", {"name": "none"}),
])
def test_one_line_sets(line, section, expected):
    from memad.config import parse_assignment

    key, value = parse_assignment(line)
    config = make_config("mnad_pred", {**tiny(), key: value})
    for k, v in expected.items():
        assert config[section][k] == v
