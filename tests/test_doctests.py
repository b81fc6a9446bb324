"""Every ``>>>`` example in memad's and the built-in plugins' docstrings runs as a test: examples that
stopped being true fail here instead of misleading a reader."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import memad
import memad_plugins


def _modules() -> list[str]:
    names = []
    for package in (memad, memad_plugins):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if info.name.endswith("__main__"):
                continue  # running it is the command line itself
            names.append(info.name)
    return sorted(names)


MODULES = _modules()
WITH_EXAMPLES = [name for name in MODULES
                 if any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name)))]


def test_the_examples_are_found():
    assert len(MODULES) > 60 and len(WITH_EXAMPLES) > 25, (len(MODULES), WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
