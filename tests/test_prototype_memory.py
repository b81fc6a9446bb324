"""MNAD's memory checked against small cases computed by hand (3 items in 2-D)."""

import math

import pytest
import torch
import torch.nn.functional as F

from memad.training import write_memory
from memad_plugins.mnad.memory import PrototypeMemory
from memad_plugins.update_rules.rules import MNADUpdate


def memory_with(items, **kwargs) -> PrototypeMemory:
    mem = PrototypeMemory(in_channels=2, items=len(items), **kwargs)
    mem.items = torch.tensor(items, dtype=torch.float32)
    return mem


def as_features(*queries):
    """Queries (each a 2-vector) as a (1, 2, 1, K) feature map."""
    return torch.tensor(queries, dtype=torch.float32).t().reshape(1, 2, 1, len(queries))


ITEMS = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]


def test_read_is_softmax_weighted_sum_of_items():
    mem = memory_with(ITEMS).eval()
    out = mem(as_features([0.8, 0.6]))
    # similarities 0.8, 0.6, -0.8 -> softmax weights
    e = [math.exp(0.8), math.exp(0.6), math.exp(-0.8)]
    w = [x / sum(e) for x in e]
    expected_read = [w[0] - w[2], w[1]]
    query, read = out.read[0, :2, 0, 0], out.read[0, 2:, 0, 0]
    assert query.tolist() == pytest.approx([0.8, 0.6])
    assert read.tolist() == pytest.approx(expected_read, abs=1e-6)


def test_query_is_normalised_before_reading():
    mem = memory_with(ITEMS).eval()
    a = mem(as_features([0.8, 0.6])).read
    b = mem(as_features([8.0, 6.0])).read
    assert torch.allclose(a, b, atol=1e-6)


def test_compactness_and_separateness_by_hand():
    mem = memory_with(ITEMS, compactness=1.0, separateness=1.0).eval()
    out = mem(as_features([0.8, 0.6]))
    # nearest item (1, 0), second nearest (0, 1)
    compact = ((0.8 - 1) ** 2 + 0.6**2) / 2  # mean over channels = 0.2
    d_pos = math.sqrt((0.8 - 1) ** 2 + 0.6**2)
    d_neg = math.sqrt(0.8**2 + (0.6 - 1) ** 2)
    separate = max(d_pos - d_neg + 1.0, 0.0)
    assert out.logs["compact"].item() == pytest.approx(compact, abs=1e-6)
    assert out.logs["separate"].item() == pytest.approx(separate, abs=1e-5)
    assert out.loss.item() == pytest.approx(compact + separate, abs=1e-5)
    assert out.distance.tolist() == pytest.approx([compact], abs=1e-6)


def test_loss_weights_scale_the_terms():
    mem = memory_with(ITEMS, compactness=0.1, separateness=0.01).eval()
    out = mem(as_features([0.8, 0.6]))
    assert out.loss.item() == pytest.approx(0.1 * out.logs["compact"].item() + 0.01 * out.logs["separate"].item())


def test_distance_is_per_sample_mean_over_positions():
    mem = memory_with(ITEMS).eval()
    feats = torch.cat([as_features([1.0, 0.0], [0.8, 0.6]), as_features([0.0, 1.0], [0.0, 1.0])])
    out = mem(feats)
    assert out.distance.tolist() == pytest.approx([(0.0 + 0.2) / 2, 0.0], abs=1e-6)


# Update rule (eq. 3-5). Items p1=(1,0), p2=(0.8,0.6), p3=(-1,0); queries a=(0.9, 0.43589),
# c=(0.8,-0.6). a is nearest to p2 (0.9815 > 0.9) but is also p1's most similar query, so the
# paper (max over the queries assigned to p1, i.e. c alone) and the official code (max over
# all queries, i.e. a) normalise p1's update differently.
A = [0.9, math.sqrt(1 - 0.81)]
C = [0.8, -0.6]
UPDATE_ITEMS = [[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]]


def _normalise(v):
    n = math.hypot(*v)
    return [v[0] / n, v[1] / n]


@pytest.mark.parametrize("normalise", ["assigned", "all"])
def test_update_by_hand(normalise):
    items = torch.tensor(UPDATE_ITEMS)
    queries = torch.tensor([A, C])
    new = MNADUpdate(normalise)(items, queries)
    sim_p1 = [A[0], C[0]]  # similarities of a and c to p1
    if normalise == "assigned":
        coef_c = 1.0  # c is the only query assigned to p1: v_c / max_{U_1} v = 1
    else:
        coef_c = math.exp(sim_p1[1]) / math.exp(sim_p1[0])  # v_c / v_a, softmax denominators cancel
    p1 = _normalise([1.0 + coef_c * C[0], 0.0 + coef_c * C[1]])
    p2 = _normalise([0.8 + A[0], 0.6 + A[1]])  # a is p2's only and most similar query: coefficient 1
    assert new[0].tolist() == pytest.approx(p1, abs=1e-6)
    assert new[1].tolist() == pytest.approx(p2, abs=1e-6)
    assert new[2].tolist() == pytest.approx([-1.0, 0.0])  # no query assigned: unchanged
    assert torch.allclose(new.norm(dim=1), torch.ones(3))


def _loop_update(items, queries, normalise):
    """Eq. 3-5 written item by item, as in the paper's text."""
    sim = queries @ items.t()
    v = torch.softmax(sim, dim=0)
    assign = sim.argmax(dim=1)
    out = items.clone()
    for m in range(items.shape[0]):
        members = (assign == m).nonzero().flatten()
        if len(members) == 0:
            continue
        denom = v[members, m].max() if normalise == "assigned" else v[:, m].max()
        out[m] = items[m] + sum(v[k, m] / denom * queries[k] for k in members)
    return F.normalize(out, dim=1)


@pytest.mark.parametrize("normalise", ["assigned", "all"])
def test_update_matches_loop_on_random_case(normalise):
    g = torch.Generator().manual_seed(3)
    items = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    queries = F.normalize(torch.randn(7, 4, generator=g), dim=1)
    assert torch.allclose(MNADUpdate(normalise)(items, queries), _loop_update(items, queries, normalise), atol=1e-6)


def test_forward_only_reads_and_the_training_write_applies_the_rule():
    mem = memory_with(UPDATE_ITEMS)
    before = mem.items.clone()
    for mode in (mem.eval, mem.train):
        mode()
        out = mem(as_features(A, C))
        assert torch.equal(mem.items, before)  # a forward pass never writes
    write_memory(mem, out.query)  # what the training loop does after each step
    expected = MNADUpdate()(before, torch.tensor([A, C]))
    assert torch.allclose(mem.items, expected, atol=1e-6)


def test_write_respects_the_gate_mask():
    mem = memory_with(UPDATE_ITEMS)
    before = mem.items.clone()
    q = F.normalize(torch.cat([as_features(A, C), as_features(C, C)]), dim=1)
    mem.write(q, keep=torch.tensor([False, False]))
    assert torch.equal(mem.items, before)
    mem.write(q, keep=torch.tensor([True, False]))
    assert torch.allclose(mem.items, MNADUpdate()(before, torch.tensor([A, C])), atol=1e-6)


def test_items_get_no_gradient_but_queries_do():
    mem = memory_with(ITEMS, compactness=1.0, separateness=1.0)
    feats = as_features([0.8, 0.6], [0.1, 0.9]).requires_grad_(True)
    out = mem(feats)
    (out.loss + out.read.sum()).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert not mem.items.requires_grad
    assert list(mem.parameters()) == []


def test_needs_two_items():
    with pytest.raises(ValueError, match="memory.items"):
        PrototypeMemory(in_channels=4, items=1)
