"""Shared fixtures: tiny configs so that the suite runs in minutes on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
import torch

# OMP_NUM_THREADS wins: on a shared, loaded machine two threads per test process thrash.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, min(2, os.cpu_count() or 1)))

#: Narrow widths and small frames for unit tests; full-size checks live in benchmarks/.
TINY = {
    "data": {"image_size": 32},
    "encoder": {"widths": [8, 16, 32, 64]},
    "train": {"epochs": 1, "batch_size": 4, "progress": False, "device": "cpu"},
}


def tiny(**extra):
    """TINY merged with ``extra`` (section-wise)."""
    out = {k: dict(v) for k, v in TINY.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and key in out:
            out[key].update(value)
        else:
            out[key] = value
    return out


def fit_and_calibrate(det, spec):
    """``det`` trained and calibrated on the generated 32x32 training split of ``spec``; returns that split."""
    from memad.data.synthetic import make_synthetic

    train = make_synthetic("training", (32, 32), 3, 32, spec)
    det.fit(train)
    det.calibrate(train)
    return train


def load_script(relative: str, name: str):
    """A script of the repository (``benchmarks/bench.py``, ``docs/gen_config.py``...) as a module."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_overrides():
    return tiny()


#: Fixtures that install packages with pip or start several processes (torchrun, spawn).
_INTEGRATION_FIXTURES = {"topk_installed", "twolevel_installed", "ranks"}


def pytest_collection_modifyitems(config, items):
    """Mark the integration tests (pip installs, torchrun or spawned ranks, a real browser) so that
    ``pytest -m "not integration"`` is a fast loop; the README's command still runs everything."""
    for item in items:
        name = item.name.lower()
        if (_INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())) or "torchrun" in name
                or "real_browser" in name or item.get_closest_marker("browser") is not None):
            item.add_marker(pytest.mark.integration)
