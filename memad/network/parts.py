"""Building registered components from config sections: the one place memad instantiates a part.

A section is ``{name: <registered name>, <param>: <value>, ...}`` (or just the name). The
component's parameters that it declares in ``nested_components`` (an update rule inside a
memory) are built here first, from their own sections, and handed to it as objects; context
arguments (``in_channels``...) are passed when the constructor names them. Each built part is
checked against its interface, and where each came from is recorded for checkpoints.

>>> rule = build_component("update_rule", {"name": "ema", "momentum": 0.5})
>>> type(rule).__name__, rule.momentum
('EMAUpdate', 0.5)
>>> build_component("update_rule", rule) is rule  # an object already built passes through
True
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from .. import config as cfgmod
from ..errors import CheckpointError, ConfigError
from ..interfaces import Decoder, Encoder, Memory, Scorer, UpdateRule
from ..registry import get_registry

__all__ = ["build_component", "build_scorer", "component_sources", "check_components_available", "INTERFACES"]

#: The interface each kind of part must implement.
INTERFACES: dict[str, type] = {"encoder": Encoder, "memory": Memory, "decoder": Decoder, "scorer": Scorer,
                               "update_rule": UpdateRule}


def build_component(kind: str, section: Any, context: Mapping[str, Any] | None = None) -> Any:
    """The component ``section`` names, built with its parameters and the ``context`` arguments its
    constructor takes; nested components first. An object that already implements ``kind``'s
    interface is returned as it is."""
    iface = INTERFACES.get(kind)
    if iface is not None and isinstance(section, iface):
        return section
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, Mapping) or "name" not in section:
        raise ConfigError(f"{kind}: expected {{name: <{kind}>, ...}} or a {kind} name, got {section!r}")
    entry = get_registry().get(kind, section["name"])
    params = {k: v for k, v in section.items() if k != "name"}
    for key, sub_kind in cfgmod.nested_components(entry.obj).items():
        if key in params:
            params[key] = build_component(sub_kind, params[key])
    accepted = inspect.signature(entry.obj).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    ctx = {k: v for k, v in (context or {}).items() if takes_all or k in accepted}
    try:
        obj = entry.obj(**ctx, **params)
    except (TypeError, ValueError) as exc:
        shown = {k: v for k, v in section.items() if k != "name"}
        raise ConfigError(f"{kind} {section['name']!r} ({entry.source}) rejected its config {shown}: {exc}") from exc
    if iface is not None and not isinstance(obj, iface):
        raise ConfigError(f"{kind} {section['name']!r} ({entry.source}) must build a memad.{iface.__name__}, got "
                          f"{type(obj).__name__}")
    return obj


def build_scorer(config: Mapping[str, Any]) -> Scorer:
    """The scorer of a validated config."""
    data = config["data"]
    ctx = {"task": config["task"], "frames": data["frames"], "image_size": cfgmod.image_hw(config)}
    return build_component("scorer", config["scorer"], ctx)


def _sections(config: Mapping[str, Any]):
    """``(path, kind, section)`` of every component section of a config, nested ones included."""
    reg = get_registry()
    stack = [(name, kind, config.get(name)) for name, kind in cfgmod.COMPONENT_SECTIONS.items()]
    while stack:
        path, kind, section = stack.pop(0)
        if not isinstance(section, Mapping) or "name" not in section:
            continue
        yield path, kind, section
        if section["name"] in reg.names(kind):
            for key, sub_kind in cfgmod.nested_components(reg.get(kind, section["name"]).obj).items():
                stack.append((f"{path}.{key}", sub_kind, section.get(key)))


def component_sources(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``{section path: {kind, name, source}}`` for every component a config uses (stored in checkpoints,
    so that loading one on a machine without a plugin can say which package it needs)."""
    reg = get_registry()
    return {path: {"kind": kind, "name": s["name"], "source": reg.get(kind, s["name"]).source}
            for path, kind, s in _sections(config)}


def check_components_available(config: Mapping[str, Any], sources: Mapping[str, Mapping[str, str]] | None,
                               where: str) -> None:
    """Raise a :class:`CheckpointError` naming the package to install when a component of ``config`` is
    not registered here; ``sources`` are the ones a checkpoint recorded (None for older files)."""
    reg = get_registry()
    for path, kind, section in _sections(config):
        name = section["name"]
        if name in reg.names(kind):
            continue
        recorded = (sources or {}).get(path, {}).get("source")
        if recorded is None:
            hint = "install the plugin package that provides it"
        elif recorded.startswith("code"):
            hint = f"it was registered in code ({recorded[6:-1]}): import that module before loading"
        else:
            hint = f"pip install {recorded.split()[0]} (the checkpoint was saved with {recorded})"
        note = f"; plugins that failed to load here: {', '.join(f'{f.name} [{f.source}]' for f in reg.failures)}" \
            if reg.failures else ""
        raise CheckpointError(f"{where}: needs {kind.replace('_', ' ')} {name!r} ({path}), which is not registered: "
                              f"{hint}{note}")
