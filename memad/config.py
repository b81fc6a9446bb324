"""Configs: presets (YAML), overrides, and validation that names the bad field.

A config is a nested mapping with these sections:

``task``
    ``prediction`` (predict the next frame from ``data.frames`` frames) or
    ``reconstruction`` (reconstruct the input).
``data``, ``train``, ``test``
    Fixed fields, see :class:`DataConfig`, :class:`TrainConfig`, :class:`TestConfig`.
``encoder``, ``memory``, ``decoder``, ``scorer``
    ``{name: <registered name>, <param>: <value>, ...}``; the params are the keyword
    arguments of the registered class. A parameter the class declares in its
    ``nested_components`` (``{"update": "update_rule"}`` for MNAD's memory) is itself a
    component section, validated and built the same way.

Overrides use dotted keys: ``data.image_size=64``, ``memory.items=20``,
``memory=memae`` (switching a component's name drops the old one's params).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import yaml

from .errors import ConfigError, unknown_name_message
from .registry import get_registry
from .validation import check_value

COMPONENT_SECTIONS = {"encoder": "encoder", "memory": "memory", "decoder": "decoder", "scorer": "scorer"}
#: Constructor arguments the detector fills from the rest of the config, never from the user.
CONTEXT_ARGS = frozenset({"in_channels", "out_channels", "encoder_channels", "encoder_reductions", "task", "frames",
                          "image_size", "update_rule", "memory_channels", "level_channels", "channels"})
#: Fields that moved, with where they are now: an old name is an error that says so.
MOVED_FIELDS = {("test", "gate"): "memory.gate (a parameter of the memories that gate their test-time writes, "
                                  "such as mnad)"}


def nested_components(obj: Any) -> dict[str, str]:
    """``{parameter: kind}`` of the parameters a component class declares as components itself."""
    return dict(getattr(obj, "nested_components", None) or {})


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
    #: What the model sees and outputs: the frames, or the differences of consecutive frames (``(f[t] - f[t-1]) / 2``,
    #: a cheap motion input in place of optical flow; a clip then reads one frame more than ``frames`` (+1 to predict)).
    input: Literal["frames", "differences"] = "frames"
    #: "clip": each clip scaled by its input frames' mean and spread, so a camera's light level, contrast and a
    #: drift of its light do not move the scores (docs/deploy.md); "none": the frames as read (the papers' input).
    normalise: Literal["none", "clip"] = "clip"
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
    #: bfloat16 autocast in training: "auto" on CUDA only; true also on CPU (fast with native bf16, e.g.
    #: avx512_bf16 or AMX; emulated and slow elsewhere); false float32. Scoring's switch: ``test.amp``.
    amp: bool | Literal["auto"] = "auto"
    #: Weights and batches in channels-last layout (NHWC) in training; "auto" turns it on for
    #: CUDA only. Scoring has its own switch, ``test.channels_last``.
    channels_last: bool | Literal["auto"] = "auto"
    #: torch.compile the encoder and decoder (training and testing): false, true (mode
    #: "default"), or a mode name. Compiling takes time up front and needs a C++ compiler on CPU.
    compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = False
    #: Fraction of the training split's videos kept out of training (whole videos, spread over the split;
    #: at least one of two or more) for the calibration: a threshold fitted on trained videos fires far
    #: more often on new normal footage. 0 trains on every video (the paper's protocol).
    holdout: float = field(default=0.25, metadata=_range(0, 0.9))
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

    #: "sequential": frame by frame, each read sees the memory as the frames before left it (the paper).
    #: "batched": ``chunk`` frames per pass, the memory written once per chunk.
    mode: Literal["sequential", "batched"] = "sequential"
    chunk: int = field(default=64, metadata=_range(1))
    #: Write the memory at test time (if it supports it), by its protocol (``mnad``: frames below ``memory.gate``).
    update: bool = True
    #: Which frame of a clip gets the clip's score: "last" (the predicted frame, or the newest
    #: input), "centre" (``clip_length // 2``, MemAE's official code) or an index into the clip.
    score_frame: int | Literal["last", "centre"] = field(default="last", metadata=_range(0))
    #: "never" carries the memory across test videos (official code); "video" restores the trained one at each.
    reset: Literal["never", "video"] = "never"
    #: After every test-time write, pull the memory's state this share of the way back to the trained one
    #: (``s <- s + anchor (trained - s)``): writes fade over about ``1 / anchor`` passes, so a long stream
    #: cannot carry the memory away from what was calibrated. 0: the paper's writes (docs/deploy.md).
    anchor: float = field(default=0.0, metadata=_range(0, 1))
    #: Each video's (and stream's) first ``warmup`` scored frames set its baseline: every signal shifted by how
    #: their median differs from the calibration videos' (memad.scoring.baseline); assumes videos start normal.
    warmup: int = field(default=0, metadata=_range(0))
    #: Each video's (and stream's) calibrated score averaged over its last ``smooth`` frames, before ``relative``'s
    #: floor: one noisy normal frame does not set the threshold. Decisions lag by about ``(smooth - 1) / 2`` frames.
    smooth: int = field(default=3, metadata=_range(0))
    #: Each video's (and stream's) calibrated score minus the 10% quantile of its last ``relative``
    #: 5-frame averages: an online per-video min-max, for scenes that differ from video to video. A stream
    #: starting inside an event takes it for its floor, as does an event much longer than ``relative``.
    relative: int = field(default=128, metadata=_range(0))
    #: A prediction model's own signals (the memory's distance...) read its input frames: frame t takes those of the
    #: next clip, whose inputs end at t, so frames after an event do not keep its reads. Streams answer a clip later.
    align_inputs: bool = True
    #: A frame is flagged when it and its video's (stream's) next ``confirm`` frames all reach the threshold: a
    #: prediction's tail after an event does not flag alone. Streams answer ``confirm`` frames late; 0: off.
    confirm: int = field(default=2, metadata=_range(0))
    #: What the threshold holds for: "frames" (a new normal frame like the calibration frames exceeds it
    #: with probability at most the rate) or "videos" (also no lower than each calibration video's 1 - rate
    #: quantile: a new video like them flags at most the rate, with probability n / (n + 1)). These settings are
    #: kept in the calibration; 0, false and "frames" score each frame on its own (docs/deploy.md).
    threshold_over: Literal["frames", "videos"] = "videos"
    #: bfloat16 autocast while scoring (eval, calibrate, stream, detect): "auto" turns it on on CUDA
    #: and on CPUs with native bf16 (AMX-BF16 or AVX512-BF16), where with channels-last it scores
    #: mnad_pred at 256x256 3 to 4 times as fast as fp32 for a Ped2 AUROC change of +0.05 points
    #: (docs/benchmarks.md); elsewhere bf16 is emulated and slow, so "auto" keeps fp32 there (memory reads: fp32).
    amp: bool | Literal["auto"] = "auto"
    #: Channels-last (NHWC) while scoring: "auto" on CUDA and CPU, where convolutions run faster in it (same maths).
    channels_last: bool | Literal["auto"] = "auto"


SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "test": TestConfig}
TOP_LEVEL = ("name", "task", "description", *SECTIONS, *COMPONENT_SECTIONS)
TASKS = ("prediction", "reconstruction")


def _check_section(name: str, values: Any, schema: type) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a mapping of fields, got {values!r}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = {}
    for key, value in values.items():
        if (name, key) in MOVED_FIELDS:
            raise ConfigError(f"{name}.{key} has moved to {MOVED_FIELDS[name, key]}; checkpoints of older versions "
                              f"are converted when loaded")
        if key not in fields:
            raise ConfigError(unknown_name_message(f"field in '{name}':", key, fields))
        out[key] = check_value(f"{name}.{key}", value, hints[key], fields[key].metadata)
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
        sub_kind = nested_components(entry.obj).get(key)
        if key not in params:
            raise ConfigError(
                unknown_name_message(f"parameter of {kind} {section['name']!r} ({path}.{key}):", key, params)
            )
        if sub_kind is not None:
            out[key] = _check_component(f"{path}.{key}", sub_kind, value)
        else:
            out[key] = check_value(f"{path}.{key}", value, hints.get(key, params[key].annotation))
    for key, p in params.items():
        if key in out:
            continue
        if p.default is inspect.Parameter.empty:
            raise ConfigError(f"{path}: {kind} {section['name']!r} needs {key!r}")
        # The defaults are written in: the config (a run's config.yaml, a checkpoint's) is then complete,
        # and a nested component left at its default is built by memad like a configured one.
        sub_kind = nested_components(entry.obj).get(key)
        if sub_kind is not None:
            if isinstance(p.default, (str, Mapping)):
                out[key] = _check_component(f"{path}.{key}", sub_kind, p.default)
        else:
            plain, value = _plain(p.default)
            if plain:
                out[key] = value
    return out


def _plain(value: Any) -> tuple[bool, Any]:
    """Whether ``value`` is plain data a config can hold (YAML-safe), and it so (tuples become lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        items = {k: _plain(v) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    return False, value


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


def _is_component_path(parts: list[str], config: Mapping[str, Any]) -> bool:
    """Whether ``parts`` names a component section: a top-level one, or a parameter that the
    component configured at its parent declares as nested (``memory.update``)."""
    if len(parts) == 1:
        return parts[0] in COMPONENT_SECTIONS
    parent = config.get(parts[0]) if parts[0] in COMPONENT_SECTIONS else None
    name = parent.get("name") if isinstance(parent, Mapping) else parent
    if len(parts) != 2 or not isinstance(name, str):
        return False
    reg = get_registry()
    kind = COMPONENT_SECTIONS[parts[0]]
    return name in reg.names(kind) and parts[1] in nested_components(reg.get(kind, name).obj)


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
        if isinstance(value, Mapping) and "name" in value and _is_component_path(parts, out):
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
            elif isinstance(nxt, str) and _is_component_path(parts[: parts.index(p) + 1], out):
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
