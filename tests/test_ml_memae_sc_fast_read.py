"""The chunked no-grad MemAE read (sparse_read) against the dense form it replaces at scoring time:
the same reads and entropies on random and edge-case inputs, the dense form kept wherever a gradient
or a tracer needs it, and ML-MemAE-SC's scores unchanged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import memad
from memad_plugins.memae import memory as memae_memory
from memad_plugins.memae.memory import MemAEMemory, attention_entropy, hard_shrink_relu, sparse_address, sparse_read

from .conftest import tiny


def _dense(query, items, shrink, how="dot"):
    """The dense form, written out from the paper's steps: softmax, hard shrinkage, L1 renormalisation."""
    logits = (torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(items, dim=1).t()
              if how == "cosine" else query @ items.t())
    w = torch.softmax(logits, dim=1)
    if shrink > 0:
        w = hard_shrink_relu(w, shrink)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    return w @ items, -(w * torch.log(w + 1e-12)).sum(1).mean()


def _check(query, items, shrink, how="dot", chunk=None):
    read, ent = sparse_read(query, items, shrink, how, chunk=chunk)
    ref_read, ref_ent = _dense(query, items, shrink, how)
    torch.testing.assert_close(read, ref_read, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, ref_ent, atol=1e-5, rtol=1e-5)
    # and the module's own dense helpers agree with the written-out form
    w = sparse_address(query, items, shrink, how)
    torch.testing.assert_close(w @ items, ref_read, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(attention_entropy(w), ref_ent, atol=1e-6, rtol=1e-6)
    return read, ent


@pytest.mark.parametrize("shrink", [0.0, 0.0005, 0.02, 0.3])
@pytest.mark.parametrize("how", ["dot", "cosine"])
@pytest.mark.parametrize("n_query, n_items, dim, chunk", [
    (100, 50, 8, None), (100, 50, 8, 7), (33, 200, 16, 1), (5, 3, 4, 64), (1, 1, 6, None), (64, 2000, 32, None),
])
def test_sparse_read_equals_the_dense_form(shrink, how, n_query, n_items, dim, chunk):
    g = torch.Generator().manual_seed(n_query * 7 + n_items)
    query = torch.randn(n_query, dim, generator=g) * 3
    items = torch.randn(n_items, dim, generator=g)
    _check(query, items, shrink, how, chunk)


@pytest.mark.parametrize("scale, shrink", [(30.0, 0.0025), (30.0, 0.0), (1e-3, 1 / 2000), (1e-3, 0.0)])
def test_entropy_with_large_logits_and_weights_just_above_the_threshold(scale, shrink):
    # scale 30: logits in the hundreds (a near one-hot read); scale 1e-3: every weight within a hair of 1/2000,
    # so w - t is a few ulps for many survivors (an untrained memory at shrink 1/items).
    g = torch.Generator().manual_seed(1)
    query, items = torch.randn(300, 32, generator=g) * scale, torch.randn(2000, 32, generator=g)
    _, ent = _check(query, items, shrink)
    if scale < 1:
        assert 0 < ent.item() < np.log(2000) + 1e-4


def test_weights_at_or_below_the_threshold_are_cut_and_ties_are_kept_together():
    # Four equal items: every weight is exactly 0.25. At threshold 0.25 (w - t == 0) all are cut: a zero read.
    items = torch.ones(4, 3)
    query = torch.randn(6, 3)
    read, ent = _check(query, items, 0.25)
    assert torch.equal(read, torch.zeros(6, 3)) and ent.item() == 0.0
    # Just below, all four survive with equal weights: the read is the item.
    read, _ = _check(query, items, 0.2499)
    torch.testing.assert_close(read, torch.ones(6, 3))
    # Two tied winners and two losers: both winners kept, equally weighted.
    items = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    read, _ = _check(torch.tensor([[5.0, 0.0]]), items, 0.01)
    torch.testing.assert_close(read, torch.tensor([[1.0, 0.0]]))


def test_every_weight_cut_reads_zero_as_the_dense_form():
    # 50 items at init-like scale: weights near 1/50 = 0.02, all below a threshold of 0.05.
    items = torch.empty(50, 8).uniform_(-0.01, 0.01)
    read, ent = _check(torch.randn(20, 8), items, 0.05, chunk=6)
    assert read.abs().max() == 0 and ent.item() == 0.0


def test_shrink_zero_is_the_plain_softmax_read():
    query, items = torch.randn(30, 5), torch.randn(12, 5)
    read, _ = sparse_read(query, items, 0.0, chunk=4)
    torch.testing.assert_close(read, torch.softmax(query @ items.t(), 1) @ items, atol=1e-6, rtol=1e-6)


def test_no_queries_read_nothing():
    read, ent = sparse_read(torch.empty(0, 4), torch.randn(3, 4), 0.1)
    assert read.shape == (0, 4) and torch.isnan(ent)  # as the dense form's mean over no queries


def test_chunks_are_equal_sized():
    # 10 queries in chunks of at most 4: 3 pieces of 3-4 rows, never a remainder of 2 (a product of a few rows
    # may round differently from the whole).
    seen = []
    real_mm = torch.mm

    def spy(a, b, *, out=None):
        if b.shape[0] == 5:  # the logits product: (rows, dim) @ (dim, items)
            seen.append(a.shape[0])
        return real_mm(a, b, out=out)

    query, items = torch.randn(10, 5), torch.randn(7, 5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memae_memory.torch, "mm", spy)
        sparse_read(query, items, 0.05, chunk=4)
    assert seen == [3, 3, 4]


def _memory(shrink=0.0005, items=300, dim=16, seed=0):
    torch.manual_seed(seed)
    return MemAEMemory(dim, items=items, shrink=shrink)


@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (2, 16, 2, 3, 4)])
def test_module_reads_without_grad_equal_the_dense_reads(shape):
    mem = _memory().eval()
    feats = torch.randn(shape)
    with torch.no_grad():
        fast = mem(feats)
        mem.fast_read = False
        dense = mem(feats)
    torch.testing.assert_close(fast.read, dense.read, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fast.loss, dense.loss, atol=1e-9, rtol=1e-5)
    torch.testing.assert_close(fast.logs["entropy"], dense.logs["entropy"], atol=1e-6, rtol=1e-5)


def test_bf16_features_are_read_in_float32():
    mem = _memory().eval()
    feats = torch.randn(2, 16, 6, 6).bfloat16()
    with torch.no_grad():
        fast = mem(feats)
        mem.fast_read = False
        dense = mem(feats)
    assert fast.read.dtype == torch.bfloat16
    torch.testing.assert_close(fast.read, dense.read, atol=0, rtol=0)  # fp32 reads within an ulp, then bf16
    q = feats.float().movedim(1, -1).reshape(-1, 16)
    ref, _ = _dense(q, mem.items.detach(), mem.shrink)
    torch.testing.assert_close(fast.read.float(), ref.view(2, 6, 6, 16).movedim(-1, 1).bfloat16().float())


def _forbid_sparse_read(mp):
    def boom(*args, **kwargs):
        raise AssertionError("sparse_read called where the dense autograd form is needed")

    mp.setattr(memae_memory, "sparse_read", boom)


def test_training_keeps_the_dense_form_and_its_gradients():
    mem = _memory(shrink=0.003)  # above some weights, below others: the shrinkage's gradient matters
    feats = torch.randn(2, 16, 4, 4, requires_grad=True)
    with pytest.MonkeyPatch.context() as mp:
        _forbid_sparse_read(mp)
        out = mem.train()(feats)
        (out.read.square().sum() + out.loss).backward()
    grads = feats.grad.clone(), mem.items.grad.clone()
    # the read as it was before the chunked one (the dense helpers, unchanged): the very same gradients
    items = mem.items.detach().clone().requires_grad_(True)
    f = feats.detach().clone().requires_grad_(True)
    q = f.movedim(1, -1).reshape(-1, 16)
    w = sparse_address(q, items, 0.003)
    ((w @ items).square().sum() + 0.0002 * attention_entropy(w)).backward()
    assert torch.equal(grads[0], f.grad) and torch.equal(grads[1], items.grad)
    # and the dense form written out from the paper's steps (its L1 norm a plain sum): the same up to rounding
    items.grad, f.grad = None, None
    read, ent = _dense(f.movedim(1, -1).reshape(-1, 16), items, 0.003)
    (read.square().sum() + 0.0002 * ent).backward()
    torch.testing.assert_close(grads[0], f.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads[1], items.grad, atol=1e-5, rtol=1e-4)
    # eval mode with a gradient wanted (e.g. saliency) is dense too
    with pytest.MonkeyPatch.context() as mp:
        _forbid_sparse_read(mp)
        mem.eval()(torch.randn(1, 16, 2, 2, requires_grad=True)).read.sum().backward()


class _ReadOnly(torch.nn.Module):
    def __init__(self, memory):
        super().__init__()
        self.memory = memory

    def forward(self, x):
        return self.memory(x).read


def test_without_grad_on_a_cpu_the_chunked_read_is_used_and_tracing_keeps_the_dense_one():
    mem = _memory().eval()
    calls = []
    real = memae_memory.sparse_read
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memae_memory, "sparse_read", lambda *a, **k: calls.append(1) or real(*a, **k))
        with torch.no_grad():
            mem(torch.randn(1, 16, 3, 3))
        with torch.inference_mode():
            mem(torch.randn(1, 16, 3, 3))
        assert len(calls) == 2
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on the shape check and its own deprecation
            traced = torch.jit.trace(_ReadOnly(mem), torch.randn(1, 16, 3, 3), check_trace=False)
        assert len(calls) == 2
    x = torch.randn(1, 16, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), mem(x).read, atol=1e-6, rtol=1e-6)
    # off a CPU (here the meta device, shapes only) the dense form, as before
    with torch.no_grad():
        assert not mem._needs_graph(torch.empty(9, 16)) and mem._needs_graph(torch.empty(9, 16, device="meta"))


def test_ml_memae_sc_scores_are_unchanged():
    det = memad.build("ml_memae_sc", **tiny(memory={"items": 300}, test={"chunk": 8}))
    frames = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    videos = memad.data.VideoSet(frames, ["a", "b"], [12, 8], source="frames")
    fast = det.score(videos)
    for m in det.modules():
        if isinstance(m, MemAEMemory):
            m.fast_read = False
    dense = det.score(videos)
    np.testing.assert_allclose(fast.scores, dense.scores, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fast.stats.signals["psnr"], dense.stats.signals["psnr"], atol=1e-4, rtol=0)
