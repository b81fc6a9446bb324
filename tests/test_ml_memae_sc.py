"""ML-MemAE-SC: MemAE memories at three encoder levels whose reads reach the decoder through the skips."""

from __future__ import annotations

import pytest
import torch

import memad
from memad_plugins.memae.memory import sparse_address

from .conftest import tiny

TINY = tiny(memory={"items": 6})


def test_each_level_reads_its_own_memory_and_the_reads_reach_the_decoder():
    det = memad.build("ml_memae_sc", **TINY).eval()
    assert det.memory_levels == [1, 2, 3] and det.encoder.channels == [8, 16, 32, 64]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = det.encoder(x)
    out = det.memory([feats[i] for i in (1, 2, 3)])
    for f, read, memory in zip(feats[1:], out.read, det.memory.memories):
        q = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])  # one query per position
        expected = (sparse_address(q, memory.items, 0.0005) @ memory.items).view(f.shape[0], f.shape[2], f.shape[3],
                                                                                  -1).permute(0, 3, 1, 2)
        torch.testing.assert_close(read, expected)
    seen = {}
    det.decoder.register_forward_hook(lambda m, args, output: seen.update(skips=args[0], bottleneck=args[1]))
    with torch.no_grad():
        det(x)
    assert seen["skips"][1] is not feats[1] and torch.allclose(seen["skips"][1], out.read[0])
    assert torch.allclose(seen["bottleneck"], out.read[2])
    # zeroing the level-1 read changes the output: the concat skip carries it
    with torch.no_grad():
        full = det.decoder(seen["skips"], seen["bottleneck"])
        cut = det.decoder([seen["skips"][0], torch.zeros_like(seen["skips"][1]), seen["skips"][2]], seen["bottleneck"])
    assert (full - cut).abs().max() > 1e-4


def test_the_entropy_loss_is_the_sum_over_levels():
    det = memad.build("ml_memae_sc", **TINY)
    feats = det.encoder(torch.rand(2, 3, 32, 32) * 2 - 1)
    out = det.memory([feats[i] for i in (1, 2, 3)])
    expected = sum(0.0002 * out.logs[f"entropy{lv}"] for lv in (1, 2, 3))
    torch.testing.assert_close(out.loss, expected)


def test_map_addressing_makes_one_query_per_sample_as_the_paper_on_patches():
    det = memad.build("ml_memae_sc", **tiny(memory={"items": 5, "address": "map"}))
    # level 1 of a 32x32 input: 16 channels x 16 x 16 positions in one item
    assert [m.items.shape[1] for m in det.memory.memories] == [16 * 16 * 16, 32 * 8 * 8, 64 * 4 * 4]
    out = det(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert out.output.shape == (2, 3, 32, 32)


def test_decoder_concatenates_only_the_configured_levels_and_bad_levels_are_named():
    det = memad.build("ml_memae_sc", **tiny(decoder={"concat": [2]}, memory={"items": 4}))
    first_convs = [c[0].in_channels for c in det.decoder.convs]  # levels 2, 1, 0
    assert first_convs == [2 * 32, 16, 8]
    with pytest.raises(memad.ConfigError, match="memory.levels"):
        memad.build("ml_memae_sc", **tiny(memory={"levels": [7]}))
    with pytest.raises(memad.ConfigError, match="decoder.concat"):
        memad.build("ml_memae_sc", **tiny(decoder={"concat": [3]}))


@pytest.mark.parametrize("preset", ["ml_memae_sc", "ml_memae_sc_diff"])
def test_presets_train_and_score(preset):
    det = memad.build(preset, **tiny(train={"max_steps_per_epoch": 3}, memory={"items": 20}))
    before = [m.items.clone() for m in det.memory.memories]
    det.fit("synthetic")
    assert all(not torch.equal(b, m.items) for b, m in zip(before, det.memory.memories))  # items learn by gradient
    scores = det.score("synthetic")
    assert det.clip_length == (2 if preset.endswith("diff") else 1)
    assert scores.metrics()["frame_auroc"] is not None
