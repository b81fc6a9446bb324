"""The component registry, fed by pluggy plugins from the ``memad`` entry-point group.

Kinds: ``encoder``, ``memory``, ``update_rule``, ``decoder``, ``scorer``, ``dataset``, ``preset`` and
``command`` (a ``memad`` subcommand: a function that adds its arguments to an argparse parser
and returns the handler; its docstring's first line is the help).
Built-in components live in ``memad_plugins`` and are loaded through the same
entry-point group and hook as a third-party package. Scripts register in code:

>>> import memad
>>> @memad.register("scorer", "always_zero")
... class Zero(memad.Scorer):
...     def __call__(self, stats):
...         return stats.psnr * 0
>>> "always_zero" in memad.list_components("scorer")
True

Environment variables: ``MEMAD_DISABLE_PLUGINS=a,b`` skips those entry points;
``MEMAD_PLUGINS=a,b`` loads only those (an allow-list).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pluggy
import yaml

from . import hookspecs
from .errors import ConfigError, unknown_name_message

KINDS = ("encoder", "memory", "update_rule", "decoder", "scorer", "dataset", "preset", "command")
ENTRY_POINT_GROUP = "memad"
#: The built-in plugin modules, registered from memad's own entry points when installed.
BUILTIN_PLUGINS = {
    "mnad": "memad_plugins.mnad",
    "update_rules": "memad_plugins.update_rules",
    "scorers": "memad_plugins.scorers",
    "baselines": "memad_plugins.baselines",
    "datasets": "memad_plugins.datasets",
    "memae": "memad_plugins.memae",
    "timm_backbone": "memad_plugins.timm_backbone",
    "commands": "memad.cli.builtin",
}


@dataclass(frozen=True)
class Entry:
    """One registered component: what it is and where it came from."""

    kind: str
    name: str
    obj: Any
    source: str  # "memad 0.1.0", "mypkg 1.2", or "code (module.name)"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be imported or raised while registering."""

    name: str
    source: str
    error: str


class Registry:
    """Components by kind and name; see the module docstring."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.failures: list[PluginFailure] = []
        self.plugins: list[tuple[str, str]] = []  # (plugin name, source)
        self._source = "code"

    # -- adding -------------------------------------------------------------------------
    def add(self, kind: str, name: str, obj: Any, *, source: str | None = None) -> Any:
        """Register ``obj`` (a class or factory) as ``kind`` ``name``; returns ``obj``.

        Re-registering a name warns and replaces the earlier entry (as timm does).
        """
        if kind not in self._entries:
            raise ConfigError(unknown_name_message("component kind", kind, KINDS))
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {kind} name must be a non-empty string, got {name!r}")
        if kind != "preset" and not callable(obj):
            raise ConfigError(f"{kind} {name!r} must be a class or factory, got {type(obj).__name__}")
        src = source or self._source
        if src == "code":
            src = f"code ({getattr(obj, '__module__', '?')})"
        old = self._entries[kind].get(name)
        if old is not None and old.obj is not obj:
            warnings.warn(f"{kind} {name!r} from {src} replaces the one from {old.source}", stacklevel=2)
        self._entries[kind][name] = Entry(kind, name, obj, src)
        return obj

    def add_preset(self, name: str, preset: Mapping[str, Any] | str | Path, *, source: str | None = None) -> None:
        """Register a preset: a config mapping, or the path of a YAML file holding one."""
        if isinstance(preset, (str, Path)):
            path = Path(preset)
            try:
                data = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"preset {name!r}: cannot read {path}: {exc}") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"preset {name!r}: {path} must hold a mapping, got {type(data).__name__}")
            preset = data
        self.add("preset", name, dict(preset), source=source)

    def add_presets(self, folder: str | Path, *, source: str | None = None) -> None:
        """Register every ``*.yaml`` in ``folder`` as a preset named after its file (``mnad_pred.yaml``
        -> ``mnad_pred``), in name order: the usual last line of a plugin's ``memad_register``."""
        for path in sorted(Path(folder).glob("*.yaml")):
            self.add_preset(path.stem, path, source=source)

    # -- reading ------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        """The entry ``kind``/``name``; an unknown name lists the valid ones."""
        if kind not in self._entries:
            raise ConfigError(unknown_name_message("component kind", kind, KINDS))
        try:
            return self._entries[kind][name]
        except (KeyError, TypeError):
            what = kind.replace("_", " ")
            raise ConfigError(unknown_name_message(what, name, self._entries[kind])) from None

    def names(self, kind: str) -> list[str]:
        if kind not in self._entries:
            raise ConfigError(unknown_name_message("component kind", kind, KINDS))
        return sorted(self._entries[kind])

    def __iter__(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from (self._entries[kind][n] for n in sorted(self._entries[kind]))

    def unregister(self, kind: str, name: str) -> None:
        self._entries[kind].pop(name, None)


# -- plugin loading ----------------------------------------------------------------------
def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip() for x in raw.split(",") if x.strip()}


def _dist_label(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _load_into(registry: Registry) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = _env_list("MEMAD_DISABLE_PLUGINS") or set()
    allowed = _env_list("MEMAD_PLUGINS")

    sources: dict[str, str] = {}
    eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    found_builtin = {ep.name for ep in eps if ep.value in BUILTIN_PLUGINS.values()}
    candidates: list[tuple[str, str, Callable[[], Any]]] = [(ep.name, _dist_label(ep), ep.load) for ep in eps]
    # Running from a source tree that was never installed: the entry points are absent,
    # so load the built-ins directly rather than starting with an empty registry.
    for name, module in BUILTIN_PLUGINS.items():
        if name not in found_builtin:
            candidates.append((name, "memad (source tree)", lambda m=module: importlib.import_module(m)))

    for name, source, load in candidates:
        if name in disabled or (allowed is not None and name not in allowed):
            continue
        if pm.has_plugin(name):
            continue
        try:
            plugin = load()
            pm.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not stop the others
            registry.failures.append(PluginFailure(name, source, f"{type(exc).__name__}: {exc}"))
            warnings.warn(f"memad plugin {name!r} from {source} failed to load: {exc}", stacklevel=3)
            continue
        sources[name] = source
    pm.check_pending()

    # Each implementation is called on its own so that what it registers is stamped
    # with its distribution and one that raises is reported without stopping the rest.
    for impl in reversed(pm.hook.memad_register.get_hookimpls()):
        name = impl.plugin_name
        registry._source = sources.get(name, "code")
        try:
            impl.function(registry=registry)
        except Exception as exc:
            registry.failures.append(PluginFailure(name, sources.get(name, "?"), f"{type(exc).__name__}: {exc}"))
            warnings.warn(f"memad plugin {name!r} failed while registering: {exc}", stacklevel=3)
        else:
            registry.plugins.append((name, sources.get(name, "code")))
        finally:
            registry._source = "code"


_REGISTRY: Registry | None = None
_LOCK = threading.Lock()
#: Registrations made in code (``register``), replayed after the plugins on every (re)load, so a
#: script's own components survive ``reload_plugins()`` the way installed plugins do.
_IN_CODE: list[tuple[str, str, Any]] = []


def get_registry() -> Registry:
    """The process-wide registry, loading the plugins on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        with _LOCK:
            if _REGISTRY is None:
                reg = Registry()
                _load_into(reg)
                for kind, name, obj in _IN_CODE:
                    reg.add(kind, name, obj, source="code")
                _REGISTRY = reg
    return _REGISTRY


def reload_plugins() -> Registry:
    """Load the plugins again (after installing or disabling one); in-code registrations are kept."""
    global _REGISTRY
    with _LOCK:
        _REGISTRY = None
    return get_registry()


def register(kind: str, name: str | None = None) -> Callable[[Any], Any]:
    """Decorator registering a class or factory in code, under ``name`` or its own name.

    >>> import memad
    >>> @memad.register("update_rule", "halfway")
    ... class Halfway(memad.UpdateRule):
    ...     def __call__(self, items, queries):
    ...         return items
    >>> memad.list_components("update_rule")["halfway"]
    'code (memad.registry)'
    """

    def deco(obj: Any) -> Any:
        key = name or getattr(obj, "__name__", None)
        get_registry().add(kind, key, obj, source="code")  # validates before it is remembered
        _IN_CODE.append((kind, key, obj))
        return obj

    return deco


def list_components(kind: str | None = None) -> dict[str, Any]:
    """``{name: source}`` for one kind, or ``{kind: {name: source}}`` for all."""
    reg = get_registry()
    if kind is not None:
        return {n: reg.get(kind, n).source for n in reg.names(kind)}
    return {k: {n: reg.get(k, n).source for n in reg.names(k)} for k in KINDS}
