"""The core's shape: no import cycle among memad/ modules (function-local imports included), no
module over 400 lines, the plugin-only model families never named in the core, and the CLI kept out of
the library."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "memad"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in CORE.rglob("*.py"):
        parts = f.relative_to(CORE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of memad it imports}``, every import statement counted, wherever it stands."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    b = pkg
                    for _ in range(node.level - 1):
                        b = b.rsplit(".", 1)[0]
                    base = b + ("." + node.module if node.module else "")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                # A package's own __init__ (and the top-level `memad`, the public facade) is not a dependency
                # of the modules inside it: importing a submodule runs it first anyway.
                if t in mods and t != m and t != "memad" and not m.startswith(t + "."):
                    graph[m].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_memad():
    graph = import_graph()
    assert len(graph) > 20 and any(graph.values())  # the parser saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_module_over_400_lines():
    long = {str(f.relative_to(CORE.parent)): n for f in CORE.rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 400}
    assert not long


#: The families proven as plugins (issue: "a new memory-augmented detector is a plugin, not a fork").
PLUGIN_ONLY_FAMILIES = ["ml_memae", "ml-memae", "memae_sc", "hf2vad", "mpn", "meta prototype", "dynamic prototype"]


@pytest.mark.parametrize("family", PLUGIN_ONLY_FAMILIES)
def test_core_never_names_the_plugin_families(family):
    """ML-MemAE-SC and MPN live entirely in plugins/: their names appear nowhere in memad/, comments included."""
    pattern = re.compile(re.escape(family).replace("\\ ", "[ _-]"), re.IGNORECASE)
    hits = [f"{f.relative_to(CORE.parent)}:{i}: {line.strip()}"
            for f in CORE.rglob("*.py") for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


def test_library_modules_do_not_import_the_cli():
    graph = import_graph()
    users = {m for m, deps in graph.items() if any(d == "memad.cli" or d.startswith("memad.cli.") for d in deps)
             and not m.startswith("memad.cli") and m != "memad.__main__"}
    assert not users


def test_every_package_is_installed():
    """pyproject.toml lists the packages by hand (memad_plugins maps to plugins/): none may be missing."""
    import tomllib

    project = tomllib.loads((CORE.parent / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {".".join(p.relative_to(CORE.parent).parts[:-1]) for p in CORE.rglob("__init__.py")}
    found |= {".".join(("memad_plugins", *p.relative_to(CORE.parent / "plugins").parts[:-1])).rstrip(".")
              for p in (CORE.parent / "plugins").rglob("__init__.py")}
    assert found == listed, f"missing {sorted(found - listed)}, stale {sorted(listed - found)}"


def test_no_import_cycle_between_subpackages():
    """memad's subpackages (memad.data, memad.scoring...) and top-level modules as units: imports between
    units point one way, as docs/concepts.md draws them (model <-> scoring was such a cycle)."""
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    units: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        units.setdefault(unit(module), set())
        if unit(module) == "memad":  # the public facade imports everything by design
            continue
        units[unit(module)] |= {unit(d) for d in deps if unit(d) != unit(module)}
    assert {"memad.network", "memad.training", "memad.scoring", "memad.detector", "memad.frames"} <= set(units)
    assert find_cycle(units) is None, " -> ".join(find_cycle(units))


def test_training_and_scoring_never_import_the_estimator():
    graph = import_graph()
    users = {m for m, deps in graph.items() if "memad.detector" in deps}
    assert not {m for m in users if m.startswith(("memad.training", "memad.scoring", "memad.network"))}, users
