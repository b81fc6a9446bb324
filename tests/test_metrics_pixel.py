"""The streamed pixel AUROC against sklearn's exact one: within its own error bound and within 0.002
on random and structured maps, exact where every distinct score has its own bin, and the range
doubling (bin merging) keeps every count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from memad.errors import ConfigError, DataError, NumericalError
from memad.metrics import PixelAUROC, pixel_auroc


def _streamed(maps, masks, batch, **kw) -> PixelAUROC:
    acc = PixelAUROC(**kw)
    for i in range(0, len(maps), batch):
        acc.update(maps[i:i + batch], masks[i:i + batch])
    return acc


def _check(acc: PixelAUROC, maps, masks, tolerance=0.002):
    exact = roc_auc_score(np.asarray(masks).reshape(-1), np.asarray(maps, dtype=np.float64).reshape(-1))
    assert abs(acc.compute() - exact) <= acc.error_bound() + 1e-12
    assert abs(acc.compute() - exact) <= tolerance
    assert acc.positives + acc.negatives == np.asarray(masks).size


def test_random_scores_whose_range_grows_batch_after_batch():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 32, 32)) < 0.1
    maps = rng.normal(size=masks.shape) + masks
    maps *= np.linspace(0.01, 3, 40)[:, None, None]  # the first batch spans a sliver of the final range
    acc = _streamed(maps, masks, batch=4)
    _check(acc, maps, masks)
    assert acc.error_bound() < 1e-3


def test_structured_error_maps_with_a_heavy_tail():
    # squared-error-like maps: smooth noise, brighter blobs on the anomalies, a few huge outliers
    rng = np.random.default_rng(1)
    masks = np.zeros((30, 48, 64), bool)
    for i in range(10, 25):
        masks[i, 10 + i:22 + i, 20:30] = True
    noise = ndimage.gaussian_filter(rng.normal(size=masks.shape), sigma=(0, 1.5, 1.5))
    maps = (noise + 0.4 * masks) ** 2 + rng.exponential(0.01, size=masks.shape)
    maps[3, 0, :4] = [50.0, 80.0, 200.0, 1000.0]
    acc = _streamed(torch.from_numpy(maps).float(), torch.from_numpy(masks), batch=5)
    _check(acc, maps.astype(np.float32), masks)


def test_exact_when_each_distinct_score_has_its_own_bin():
    rng = np.random.default_rng(2)
    maps = rng.integers(0, 10, size=(6, 20, 20)).astype(float)
    masks = rng.random(maps.shape) < maps / 20
    acc = _streamed(maps, masks, batch=2, bins=1024)
    assert acc.compute() == pytest.approx(roc_auc_score(masks.reshape(-1), maps.reshape(-1)), abs=1e-12)


def test_constant_first_batches_and_a_given_scale():
    maps = np.concatenate([np.zeros((3, 8, 8)), np.linspace(-1, 2, 5 * 64).reshape(5, 8, 8)])
    masks = np.zeros(maps.shape, bool)
    masks[:2, :2] = True
    masks[5:, 4:] = True
    for kw in ({}, {"center": 0.0, "scale": 0.01}, {"center": 100.0, "scale": 1000.0, "bins": 1 << 20}):
        acc = _streamed(maps, masks, batch=1, **kw)
        _check(acc, maps, masks)
    same = _streamed(np.ones((2, 4, 4)), np.eye(4, dtype=bool)[None].repeat(2, 0), batch=1)
    assert same.compute() == 0.5  # all tied, as sklearn says


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(1e-3, 1e3), st.floats(-5, 5), st.sampled_from([16, 64, 4096]))
def test_the_error_bound_always_holds(seed, scale, shift, bins):
    rng = np.random.default_rng(seed)
    masks = rng.random((6, 10, 10)) < rng.uniform(0.05, 0.5)
    maps = (rng.standard_t(2, size=masks.shape) + rng.uniform(0, 2) * masks) * scale * rng.uniform(0.1, 1, (6, 1, 1))
    maps = maps + shift * scale
    acc = _streamed(maps, masks, batch=int(rng.integers(1, 4)), bins=bins)
    exact = roc_auc_score(masks.reshape(-1), maps.reshape(-1))
    assert abs(acc.compute() - exact) <= acc.error_bound() + 1e-9


def test_one_class_none_and_bad_input():
    acc = _streamed(np.random.rand(2, 4, 4), np.zeros((2, 4, 4), bool), batch=1)
    assert acc.compute() is None and acc.error_bound() is None
    assert PixelAUROC().compute() is None
    assert pixel_auroc(torch.rand(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool)) is None
    with pytest.raises(DataError, match="differ"):
        PixelAUROC().update(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))
    with pytest.raises(NumericalError, match="NaN"):
        PixelAUROC().update(np.full((1, 2, 2), np.nan), np.zeros((1, 2, 2), bool))
    with pytest.raises(ConfigError, match="bins"):
        PixelAUROC(bins=1001)
    with pytest.raises(ConfigError, match="scale"):
        PixelAUROC(scale=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_counts_on_the_gpu_match_the_cpu():
    rng = np.random.default_rng(3)
    masks = torch.from_numpy(rng.random((8, 32, 32)) < 0.2)
    maps = torch.from_numpy(rng.exponential(size=(8, 32, 32))) + masks
    cpu, gpu = _streamed(maps, masks, batch=2), _streamed(maps.cuda(), masks.cuda(), batch=2)
    assert gpu.compute() == pytest.approx(cpu.compute(), abs=1e-12)
