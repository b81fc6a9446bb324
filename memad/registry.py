"""The component registry, fed by pluggy plugins from the ``memad`` entry-point group.

Kinds: ``encoder``, ``memory``, ``update_rule``, ``decoder``, ``scorer``, ``dataset``, ``preset``,
``command`` (a ``memad`` subcommand: a function that adds its arguments to an argparse parser
and returns the handler; its docstring's first line is the help) and ``logger`` (an experiment
tracker, a :class:`memad.tracking.Logger` subclass, named by ``--logger``; see docs/tracking.md).
Built-in components live in ``memad_plugins`` and are loaded through the same
entry-point group and hook as a third-party package (memad's own entry points, from its
installed metadata or, in a source checkout, its ``pyproject.toml``). A plugin that fails to
import, misspells its hook or forgets ``@memad.hookimpl`` is recorded in ``failures`` (with its
distribution), reported in one warning, and the others load. Scripts register in code:

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

import difflib
import importlib
import importlib.metadata as metadata
import importlib.util
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pluggy
import yaml

from . import hookspecs
from .errors import ConfigError, unknown_name_message

KINDS = ("encoder", "memory", "update_rule", "decoder", "scorer", "dataset", "preset", "command", "logger")
ENTRY_POINT_GROUP = "memad"
#: The distribution memad itself is installed as (its entry points are the built-in plugins).
DISTRIBUTION = "memad"


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


def _entry_points() -> list[tuple[str, str, str]]:
    """``(name, module, source)`` of every plugin: the ``memad`` entry points of the installed distributions,
    memad's own among them. In a source checkout that was never installed, memad's own come from the
    same table, read from the checkout's ``pyproject.toml``: one list of built-ins, read one way."""
    found = [(ep.name, ep.value, _dist_label(ep)) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    if any(source.split()[0] == DISTRIBUTION for _, _, source in found):
        return found
    return found + _source_tree_entry_points()


def _source_tree_entry_points() -> list[tuple[str, str, str]]:
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    project = tomllib.loads(pyproject.read_text())
    table = project.get("project", {}).get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    # The installed package names map to the checkout's folders as pyproject's package-dir says.
    for package, folder in project.get("tool", {}).get("setuptools", {}).get("package-dir", {}).items():
        if package not in sys.modules and importlib.util.find_spec(package) is None and (root / folder).is_dir():
            spec = importlib.util.spec_from_file_location(package, root / folder / "__init__.py",
                                                          submodule_search_locations=[str(root / folder)])
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[package] = module
                spec.loader.exec_module(module)
    version = project.get("project", {}).get("version", "")
    return [(name, value, f"{DISTRIBUTION} {version} (source tree)".replace("  ", " "))
            for name, value in table.items()]


def _hook_problem(pm: pluggy.PluginManager, plugin: Any) -> str | None:
    """What makes an imported plugin module unusable, before its hooks run: a hook of another name than
    memad's (a misspelling), a hook function without ``@memad.hookimpl``, or no hook at all."""
    marker = f"{hookspecs.PROJECT}_impl"
    known = {name for name in dir(hookspecs) if name.startswith("memad_")}
    for name in dir(plugin):
        fn = getattr(plugin, name, None)
        if not callable(fn) or not name.startswith("memad_"):
            continue
        if hasattr(fn, marker) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"hook {name!r} is not a memad hook{hint} (hooks: {', '.join(sorted(known))})"
        if name in known and not hasattr(fn, marker):
            return f"{name} is not marked @memad.hookimpl, so memad would ignore it"
    if not any(hasattr(getattr(plugin, n, None), marker) for n in dir(plugin)):
        return f"implements no memad hook (expected a function decorated @memad.hookimpl: {', '.join(sorted(known))})"
    return None


def _load_into(registry: Registry) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = _env_list("MEMAD_DISABLE_PLUGINS") or set()
    allowed = _env_list("MEMAD_PLUGINS")

    def fail(name: str, source: str, error: str) -> None:
        registry.failures.append(PluginFailure(name, source, error))

    sources: dict[str, str] = {}
    for name, value, source in _entry_points():
        if name in disabled or (allowed is not None and name not in allowed) or pm.has_plugin(name):
            continue
        try:
            plugin = importlib.import_module(value) if ":" not in value else \
                getattr(importlib.import_module(value.split(":")[0]), value.split(":")[1])
        except Exception as exc:  # a broken plugin must not stop the others
            fail(name, source, f"{type(exc).__name__}: {exc}")
            continue
        problem = _hook_problem(pm, plugin)
        if problem is not None:
            fail(name, source, problem)
            continue
        pm.register(plugin, name=name)
        sources[name] = source

    # Each implementation is called on its own so that what it registers is stamped
    # with its distribution and one that raises is reported without stopping the rest.
    for impl in reversed(pm.hook.memad_register.get_hookimpls()):
        name = impl.plugin_name
        registry._source = sources.get(name, "code")
        try:
            impl.function(registry=registry)
        except Exception as exc:
            fail(name, sources.get(name, "?"), f"{type(exc).__name__}: {exc}")
        else:
            registry.plugins.append((name, sources.get(name, "code")))
        finally:
            registry._source = "code"
    if registry.failures:  # one warning for them all; `memad list` shows each
        warnings.warn("; ".join(f"memad plugin {f.name!r} from {f.source} failed to load: {f.error}"
                                for f in registry.failures) + " (the other plugins loaded)", stacklevel=3)


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
