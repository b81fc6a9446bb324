"""Files written atomically (a temporary file in the same folder, flushed and renamed over the
target: a kill never leaves half a file in its place), and run records compared by config.

Every writer of checkpoints, JSON records and score arrays goes through :func:`atomic_write`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Callable, Collection, Mapping

import numpy as np

__all__ = ["atomic_write", "write_json_atomic", "write_text_atomic", "config_difference", "RESULT_NEUTRAL_FIELDS"]

#: Config fields that do not change a run's result (ignored when checking a finished run).
RESULT_NEUTRAL_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {("train", "progress"), ("train", "device"), ("data", "cache_dir"), ("data", "workers"), ("data", "in_memory"),
     ("data", "memory_budget_gb")})


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, and rename it to ``path``.

    >>> import tempfile
    >>> p = atomic_write(Path(tempfile.mkdtemp()) / "a.bin", lambda f: f.write(b"ok"))
    >>> p.read_bytes()
    b'ok'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600), and a shared checkpoint should get the mode
    # (umask) any new file gets. O_EXCL and a random name keep it just as safe.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically; numpy scalars/arrays and paths are converted."""
    return write_text_atomic(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


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
