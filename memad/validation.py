"""Values checked against type annotations, with messages that name the field, the bad value and
what was expected: the checks behind config validation (:mod:`memad.config`).

>>> check_value("data.channels", 3, int)
3
>>> type_name(list[int])
'a list of int'
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, Mapping

from .errors import ConfigError

__all__ = ["type_name", "coerce", "check_value"]


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {type_name(args[0])}" if args else "a list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; ints are accepted for floats."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True, value
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = coerce(value, arg)
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
            ok, cv = coerce(v, inner)
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


def check_value(path: str, value: Any, tp: Any, meta: Mapping[str, Any] | None = None) -> Any:
    ok, value = coerce(value, tp)
    if not ok:
        raise ConfigError(f"{path}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})")
    meta = meta or {}
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{path}: expected one of {list(meta['choices'])}, got {value!r}")
    if "range" in meta and value is not None:
        lo, hi, lo_open = meta["range"]
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str):  # a named choice beside a numeric range ("last" or an index)
                continue
            if lo is not None and (v <= lo if lo_open else v < lo):
                raise ConfigError(f"{path}: expected a value {'>' if lo_open else '>='} {lo}, got {v!r}")
            if hi is not None and v > hi:
                raise ConfigError(f"{path}: expected a value <= {hi}, got {v!r}")
    return value
