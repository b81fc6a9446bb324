"""memad.metrics as a package: the names it exported as one module still import from it, it reuses
memad.events (the tracker `memad detect` runs) and imports nothing of the reports, scoring or model
layers, and its docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import memad.events
import memad.metrics
from tests.test_layering import import_graph

OLD_NAMES = ["frame_metrics", "pixel_auroc", "eer", "precision_recall_f1", "category_metrics", "f1_at_threshold",
             "best_f1"]
MODULES = sorted(f"memad.metrics.{m.name}" for m in pkgutil.iter_modules(memad.metrics.__path__))


@pytest.mark.parametrize("name", OLD_NAMES)
def test_the_old_names_still_import(name):
    assert callable(getattr(memad.metrics, name)) and name in memad.metrics.__all__


def test_every_exported_name_exists():
    assert all(hasattr(memad.metrics, n) for n in memad.metrics.__all__)


def test_metrics_depend_on_no_layer_above_them():
    graph = import_graph()
    for mod in ["memad.metrics", *MODULES]:
        above = {d for d in graph[mod] if d.startswith(("memad.reports", "memad.scoring", "memad.model"))}
        assert not above, f"{mod} imports {above}"


def test_the_event_metrics_and_memad_detect_share_one_tracker():
    from memad.metrics import deployment
    from memad.reports import detect

    assert deployment.EventTracker is detect.EventTracker is memad.events.EventTracker


@pytest.mark.parametrize("module", MODULES + ["memad.events"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
