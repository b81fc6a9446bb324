"""The pluggy hook through which every component reaches memad, built-in or not.

A plugin is a module (or object) with a ``memad_register(registry)`` function marked
with :data:`hookimpl`, exposed in the ``memad`` entry-point group of its distribution::

    # pyproject.toml of your package
    [project.entry-points.memad]
    mytopk = "mypkg.memad_plugin"

    # mypkg/memad_plugin.py
    from memad import hookimpl

    @hookimpl
    def memad_register(registry):
        registry.add("memory", "topk", TopKMemory)
"""

from __future__ import annotations

import pluggy

PROJECT = "memad"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def memad_register(registry):  # type: ignore[no-untyped-def]
    """Add components and presets: ``registry.add(kind, name, obj)`` / ``registry.add_preset(name, path)``."""
