"""Run records on disk: JSON written atomically, and the first config field two runs differ in.

Shared by :mod:`memad.compare` and the benchmarks, which both skip a finished run only when
its config matches the one asked for now.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np

__all__ = ["write_json_atomic", "config_difference", "RESULT_NEUTRAL_FIELDS"]

#: Config fields that do not change a run's result (ignored when checking a finished run).
RESULT_NEUTRAL_FIELDS: frozenset[tuple[str, str]] = frozenset({("train", "progress"), ("train", "device")})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON through a temporary file and a rename: a kill never leaves half a file.

    numpy scalars and paths are converted; anything else unknown is a TypeError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _flat(cfg: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in cfg.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def config_difference(old: Mapping[str, Any], new: Mapping[str, Any],
                      ignored: Collection[tuple[str, str]] = RESULT_NEUTRAL_FIELDS) -> str | None:
    """The first field (dotted) whose value differs between two configs, or None.

    >>> config_difference({"train": {"lr": 1e-4, "progress": True}}, {"train": {"lr": 2e-4, "progress": False}})
    'train.lr: 0.0001 there, 0.0002 now'
    """
    a, b = _flat(old), _flat(new)
    for key in sorted(set(a) | set(b)):
        if key[:2] in ignored:
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            return f"{'.'.join(key)}: {a.get(key, '<unset>')!r} there, {b.get(key, '<unset>')!r} now"
    return None
