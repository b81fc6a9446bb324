"""Configs: presets (YAML), overrides, and validation that names the bad field.

A config is a nested mapping with these sections:

``task``
    ``prediction`` (predict the next frame from ``data.frames`` frames) or
    ``reconstruction`` (reconstruct the input).
``data``, ``train``, ``test``
    Fixed fields, see :class:`DataConfig`, :class:`TrainConfig`, :class:`TestConfig`.
``encoder``, ``memory``, ``decoder``, ``scorer``
    ``{name: <registered name>, <param>: <value>, ...}``; the params are the keyword
    arguments of the registered class. ``memory.update`` is itself a component
    section (kind ``update_rule``).

Overrides use dotted keys: ``data.image_size=64``, ``memory.items=20``,
``memory=memae`` (switching a component's name drops the old one's params).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import yaml

from .errors import ConfigError, unknown_name_message
from .registry import get_registry

COMPONENT_SECTIONS = {"encoder": "encoder", "memory": "memory", "decoder": "decoder", "scorer": "scorer"}
NESTED_COMPONENTS = {("memory", "update"): "update_rule"}
#: Constructor arguments the detector fills from the rest of the config, never from the user.
CONTEXT_ARGS = frozenset(
    {"in_channels", "out_channels", "encoder_channels", "encoder_reductions", "task", "frames", "image_size",
     "update_rule", "memory_channels"}
)


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict[str, Any]:
    return {"range": (lo, hi, lo_open)}


@dataclass
class DataConfig:
    """How frames are read and shaped."""

    #: Frames are resized to this (one int for square, or ``[height, width]``).
    image_size: int | list[int] = field(default=256, metadata=_range(8))
    #: 3 for colour, 1 for grayscale (frames are converted on load).
    channels: int = field(default=3, metadata={"choices": (1, 3)})
    #: Input frames per sample (prediction predicts the one after them).
    frames: int = field(default=1, metadata=_range(1))
    #: Test frames whose pixel maps are kept for pixel AUROC, maps are resized to at most this side.
    pixel_eval_size: int = field(default=64, metadata=_range(8))
    #: Keep a split's decoded frames in memory (on the GPU when training there): "auto" does when
    #: the split fits ``memory_budget_gb``; otherwise frames are read from the on-disk frame cache.
    in_memory: bool | Literal["auto"] = "auto"
    #: Largest split (uint8 frames, GiB) that ``in_memory: auto`` keeps in memory.
    memory_budget_gb: float = field(default=4.0, metadata=_range(0))
    #: Folder of the on-disk frame cache (null: the user cache directory, via platformdirs).
    cache_dir: str | None = None
    #: DataLoader worker processes reading clips from the frame cache (0: in the main process).
    workers: int = field(default=2, metadata=_range(0))


@dataclass
class TrainConfig:
    """Optimisation (the official MNAD code's settings by default)."""

    epochs: int = field(default=60, metadata=_range(0))
    #: Clips per step and per process: under torchrun the global batch is batch_size x processes.
    batch_size: int = field(default=4, metadata=_range(1))
    lr: float = field(default=2e-4, metadata=_range(0, lo_open=True))
    weight_decay: float = field(default=0.0, metadata=_range(0))
    scheduler: Literal["cosine", "constant"] = "cosine"
    seed: int = 0
    #: "auto" picks CUDA when available.
    device: str = "auto"
    #: bfloat16 autocast on CUDA (ignored on CPU).
    amp: bool = True
    #: Weights and batches in channels-last layout (NHWC), used for training and testing;
    #: "auto" turns it on for CUDA only, where convolutions run faster in that layout.
    channels_last: bool | Literal["auto"] = "auto"
    #: torch.compile the encoder and decoder (training and testing): false, true (mode
    #: "default"), or a mode name. Compiling takes time up front and needs a C++ compiler on CPU.
    compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = False
    #: Clips per epoch are all clips of the training videos; this caps them (0 = all).
    max_steps_per_epoch: int = field(default=0, metadata=_range(0))
    #: Show a tqdm progress bar.
    progress: bool = True
    #: Under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm, GPUs only)
    #: instead of each process's own ``batch_size`` clips. See docs/distributed.md.
    sync_bn: bool = False


@dataclass
class TestConfig:
    """Scoring the test set."""

    #: "sequential": frame by frame, each read sees the memory as the frames before left it
    #: (the paper). "batched": ``chunk`` frames per pass, the memory written once per chunk.
    mode: Literal["sequential", "batched"] = "sequential"
    chunk: int = field(default=64, metadata=_range(1))
    #: Write the memory at test time (for memories that support it).
    update: bool = True
    #: Test-time gate: a frame's queries are written only when its weighted regular
    #: score (eq. 6-7) is below this; null writes every frame.
    gate: float | None = field(default=None, metadata=_range(0))
    #: "never" carries the memory across test videos (official code); "video" restores
    #: the trained memory at the start of each video.
    reset: Literal["never", "video"] = "never"


SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "test": TestConfig}
TOP_LEVEL = ("name", "task", "description", *SECTIONS, *COMPONENT_SECTIONS)
TASKS = ("prediction", "reconstruction")


# -- type checking -----------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; ints are accepted for floats."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True, value
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _coerce(value, arg)
            if ok:
                return True, v
        return False, value
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        if not args:
            return True, list(value)
        inner = args[0]
        out = []
        for v in value:
            ok, cv = _coerce(v, inner)
            if not ok:
                return False, value
            out.append(cv)
        return True, out
    if origin in (dict, typing.Mapping) or tp in (dict,):
        return isinstance(value, dict), value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        return isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def _check_value(path: str, value: Any, tp: Any, meta: Mapping[str, Any] | None = None) -> Any:
    ok, value = _coerce(value, tp)
    if not ok:
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    meta = meta or {}
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{path}: expected one of {list(meta['choices'])}, got {value!r}")
    if "range" in meta and value is not None:
        lo, hi, lo_open = meta["range"]
        for v in value if isinstance(value, list) else [value]:
            if lo is not None and (v <= lo if lo_open else v < lo):
                raise ConfigError(f"{path}: expected a value {'>' if lo_open else '>='} {lo}, got {v!r}")
            if hi is not None and v > hi:
                raise ConfigError(f"{path}: expected a value <= {hi}, got {v!r}")
    return value


def _check_section(name: str, values: Any, schema: type) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a mapping of fields, got {values!r}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(unknown_name_message(f"field in '{name}':", key, fields))
        out[key] = _check_value(f"{name}.{key}", value, hints[key], fields[key].metadata)
    for key, f in fields.items():
        if key not in out:
            out[key] = copy.deepcopy(f.default if f.default is not dataclasses.MISSING else f.default_factory())
    return out


def component_params(obj: Any) -> dict[str, inspect.Parameter]:
    """The user-settable constructor parameters of a registered class or factory."""
    sig = inspect.signature(obj)
    return {
        n: p
        for n, p in sig.parameters.items()
        if n not in CONTEXT_ARGS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"
    }


def _component_hints(obj: Any) -> dict[str, Any]:
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}


def _check_component(path: str, kind: str, section: Any) -> dict[str, Any]:
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, Mapping) or "name" not in section:
        raise ConfigError(f"{path}: expected {{name: <{kind}>, ...}} or a {kind} name, got {section!r}")
    entry = get_registry().get(kind, section["name"])
    params = component_params(entry.obj)
    hints = _component_hints(entry.obj)
    out: dict[str, Any] = {"name": section["name"]}
    for key, value in section.items():
        if key == "name":
            continue
        sub_kind = NESTED_COMPONENTS.get((path, key))
        if key not in params:
            raise ConfigError(
                unknown_name_message(f"parameter of {kind} {section['name']!r} ({path}.{key}):", key, params)
            )
        if sub_kind is not None:
            out[key] = _check_component(f"{path}.{key}", sub_kind, value)
        else:
            out[key] = _check_value(f"{path}.{key}", value, hints.get(key, params[key].annotation))
    for key, p in params.items():
        if key not in out and p.default is inspect.Parameter.empty:
            raise ConfigError(f"{path}: {kind} {section['name']!r} needs {key!r}")
    return out


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a complete, checked copy of ``config`` (defaults filled in).

    Raises :class:`ConfigError` naming the field, the bad value and what is allowed.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping, got {type(config).__name__}")
    for key in config:
        if key not in TOP_LEVEL:
            raise ConfigError(unknown_name_message("config section", key, TOP_LEVEL))
    out: dict[str, Any] = {"name": str(config.get("name", "custom"))}
    if config.get("description") is not None:
        out["description"] = str(config["description"])
    task = config.get("task", "reconstruction")
    if task not in TASKS:
        raise ConfigError(f"task: expected one of {list(TASKS)}, got {task!r}")
    out["task"] = task
    for name, schema in SECTIONS.items():
        out[name] = _check_section(name, config.get(name) or {}, schema)
    for name, kind in COMPONENT_SECTIONS.items():
        if name not in config:
            raise ConfigError(f"config has no {name!r} section (expected {{name: <{kind}>, ...}})")
        out[name] = _check_component(name, kind, config[name])
    return out


# -- overrides ---------------------------------------------------------------------------
def parse_assignment(text: str) -> tuple[str, Any]:
    """``"data.image_size=64"`` -> ``("data.image_size", 64)``; values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot read value {raw!r}: {exc}") from exc
    return key, value


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        # A mapping given for a section merges field by field; for a component it may also rename.
        if isinstance(value, Mapping) and path.split(".")[0] in TOP_LEVEL and path != "name":
            if "name" in value:
                items.append((f"{path}.name", value["name"]))
            items.extend(_flatten({k: v for k, v in value.items() if k != "name"}, f"{path}."))
        else:
            items.append((path, value))
    return items


def _is_component_path(parts: list[str]) -> bool:
    return parts[0] in COMPONENT_SECTIONS or tuple(parts[:2]) in NESTED_COMPONENTS


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` (dotted keys or nested mappings) into a copy of ``config``.

    Setting a component (``memory=memae`` or ``memory.name=memae``) to another name
    starts that section afresh with the new component's defaults.

    >>> apply_overrides({"data": {"image_size": 256}}, {"data.image_size": 64})
    {'data': {'image_size': 64}}
    """
    out = copy.deepcopy(dict(config))
    for path, value in _flatten(overrides):
        parts = path.split(".")
        if parts[-1] == "name" and len(parts) >= 2:
            parts, value = parts[:-1], {"name": value}
        if isinstance(value, Mapping) and "name" in value and _is_component_path(parts):
            node = out
            for p in parts[:-1]:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{path}: {'.'.join(parts[:-1])} is not a section")
            old = node.get(parts[-1])
            old_name = old.get("name") if isinstance(old, Mapping) else old
            if old_name != value["name"]:
                node[parts[-1]] = dict(value)
            else:
                node[parts[-1]] = {**(old if isinstance(old, Mapping) else {}), **value}
            continue
        if isinstance(value, str) and len(parts) == 1 and parts[0] in COMPONENT_SECTIONS:
            old = out.get(parts[0])
            if not (isinstance(old, Mapping) and old.get("name") == value):
                out[parts[0]] = {"name": value}
            continue
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif isinstance(nxt, str) and _is_component_path(parts[: parts.index(p) + 1]):
                nxt = node[p] = {"name": nxt}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"{path}: {p!r} holds {nxt!r}, not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def preset_config(name: str) -> dict[str, Any]:
    """The raw (unvalidated) mapping of a registered preset."""
    return copy.deepcopy(get_registry().get("preset", name).obj)


def make_config(preset: str | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A validated config from a preset name (or a mapping) plus overrides."""
    base = preset_config(preset) if isinstance(preset, str) else copy.deepcopy(dict(preset))
    if isinstance(preset, str):
        base.setdefault("name", preset)
    return validate(apply_overrides(base, overrides or {}))


def image_hw(config: Mapping[str, Any]) -> tuple[int, int]:
    """``data.image_size`` as ``(height, width)``."""
    size = config["data"]["image_size"]
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ConfigError(f"data.image_size: expected an int or [height, width], got {size!r}")
    return int(size[0]), int(size[1])


def to_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)
