"""MPN's dynamic prototype unit against a hand-computed case, its losses, and the mpn preset end to end."""

from __future__ import annotations

import math

import pytest
import torch

import memad
from memad_plugins.mpn.prototypes import DynamicPrototypes, distinction_loss

from .conftest import tiny


def _unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_prototypes_read_and_distance_by_hand():
    # one sample, D = 2, two positions q0 = (1, 0), q1 = (0, 1); heads W = identity: head m scores q_n by its m-th value
    unit = DynamicPrototypes(2, prototypes=2)
    with torch.no_grad():
        unit.heads.weight.copy_(torch.eye(2))
    q = [[1.0, 0.0], [0.0, 1.0]]
    feats = torch.tensor(q).t().reshape(1, 2, 1, 2)
    out = unit(feats)
    # attention over positions per head, prototypes as weighted sums of the positions, normalised
    protos = []
    for m in range(2):
        a = _softmax([q[n][m] for n in range(2)])
        protos.append(_unit([sum(a[n] * q[n][d] for n in range(2)) for d in range(2)]))
    torch.testing.assert_close(out["protos"][0], torch.tensor(protos), atol=1e-6, rtol=0)
    expected_read, sq = [], []
    for n in range(2):
        s = [sum(q[n][d] * protos[m][d] for d in range(2)) for m in range(2)]
        w = _softmax(s)
        r = _unit([sum(w[m] * protos[m][d] for m in range(2)) for d in range(2)])
        expected_read.append([r[d] + q[n][d] for d in range(2)])
        near = protos[max(range(2), key=lambda m: s[m])]
        sq.append(sum((q[n][d] - near[d]) ** 2 for d in range(2)) / 2)
    torch.testing.assert_close(out["read"][0].reshape(2, 2).t(), torch.tensor(expected_read), atol=1e-6, rtol=0)
    assert out["distance"].item() == pytest.approx(sum(sq) / 2, abs=1e-7)
    assert out["feature_loss"].item() == pytest.approx(sum(sq) / 2, abs=1e-7)
    d2 = sum((protos[0][d] - protos[1][d]) ** 2 for d in range(2))
    assert out["distinction_loss"].item() == pytest.approx(max(0.0, 1 - d2) * 2 / 2, abs=1e-6)


def test_distinction_loss_ignores_far_apart_prototypes():
    far = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])  # |p0 - p1|^2 = 4: 1 - 4 < 0
    assert distinction_loss(far).item() == 0.0
    same = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    assert distinction_loss(same).item() == pytest.approx(1.0)


def test_mpn_preset_sizes_the_unit_from_the_decoder_and_trains_it():
    det = memad.build("mpn", **tiny(train={"max_steps_per_epoch": 3}))
    assert det.decoder.prototypes.dim == 2 * 8  # the U-Net decoder's last features: twice the first width
    before = det.decoder.prototypes.heads.weight.clone()
    det.fit("synthetic")
    assert not torch.equal(before, det.decoder.prototypes.heads.weight)  # the heads learn by gradient
    assert {"reconstruction", "memory", "decoder"} <= set(det.history_[-1])
    scores = det.score("synthetic")
    assert "distance" in scores.stats and scores.metrics()["frame_auroc"] is not None


def test_prototype_unit_as_a_bottleneck_memory():
    det = memad.build("mnad_pred", **tiny(), memory={"name": "dpu", "prototypes": 4})
    out = det(torch.rand(2, 12, 32, 32) * 2 - 1)
    assert out.memory.read.shape == (2, 64, 4, 4) and out.signals["distance"].shape == (2,)
    with pytest.raises(memad.ConfigError, match="prototypes: expected at least 2"):
        memad.build("mpn", **tiny(), decoder={"prototypes": 1})
