"""The metadata an exported model carries, sealed by content: what it holds, and how an edit is found.

An export's metadata (ONNX metadata property or TorchScript extra file, JSON) holds the config,
the calibration, the threshold, the initial memory state and the check sequence. Each of those
fields is covered by a SHA-256 digest of its canonical JSON, stored beside it: :func:`read_meta`
recomputes every digest when the file is loaded, so an edit of any field (a threshold raised from
0.9 to 1000, another image size) is refused, naming the field. A digest is not a signature — who
can edit the file can recompute it — so a deliberate forgery still meets the check sequence, which
reruns the exported graph on stored frames against the stored scores. Arrays are ``.npy`` text,
read without pickle.

>>> meta = seal({"threshold": 0.5, "config": {}})
>>> read_meta("m.onnx", json.dumps(meta), required=("threshold", "config"))["threshold"]
0.5
>>> read_meta("m.onnx", json.dumps({**meta, "threshold": 1000}), required=("threshold", "config"))
Traceback (most recent call last):
...
memad.errors.CheckpointError: m.onnx: the metadata's threshold was changed after export (its digest ...
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import CheckpointError

__all__ = ["TAG", "VERSION", "FIELDS", "seal", "read_meta", "npy_text", "from_npy_text"]

TAG = "memad-export"
#: 2: fields sealed by digests. Version-1 files (no digests) load with a warning.
VERSION = 2
#: The fields every export holds (each sealed by a digest).
FIELDS = ("config", "calibration", "threshold", "signals", "state_names", "state", "clip_length", "score_offset",
          "check")


def npy_text(arr: np.ndarray) -> str:
    """An array as base64 ``.npy`` text (no pickle), for metadata."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def from_npy_text(text: str, what: str = "array") -> np.ndarray:
    """The array :func:`npy_text` wrote; anything else (a pickle, damaged text) is a CheckpointError."""
    try:
        return np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    except (ValueError, TypeError, OSError, EOFError) as exc:
        raise CheckpointError(f"{what}: not a plain .npy array ({str(exc).splitlines()[0]}); refused") from exc


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def seal(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with the format tag, version and a digest of each field."""
    out = {k: v for k, v in meta.items() if k != "digests"}
    out.update(format=TAG, version=VERSION)
    out["digests"] = {k: _digest(out[k]) for k in sorted(out) if k not in ("format", "version")}
    return out


def read_meta(path: str | Path, text: str, required: Sequence[str] = FIELDS) -> dict[str, Any]:
    """The metadata of the export at ``path``, checked: JSON, the fields ``required``, and each field
    against its digest; one line naming what is wrong otherwise."""
    try:
        meta = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: the export's metadata is not JSON ({exc}); refused") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the export's metadata must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in required if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: the export's metadata lacks {', '.join(map(repr, missing))}; refused: export "
                              f"again from the checkpoint")
    digests = meta.get("digests")
    if digests is None and meta.get("version", 1) < 2:
        warnings.warn(f"{path}: written before exports sealed their metadata (version 1): an edit of its threshold "
                      f"or calibration cannot be told; export again from the checkpoint", stacklevel=3)
        return meta
    if not isinstance(digests, dict):
        raise CheckpointError(f"{path}: the export's metadata has no digests; refused: export again")
    for key in sorted(set(meta) - {"format", "version", "digests"} | set(digests)):
        if key not in meta or digests.get(key) != _digest(meta[key]):
            what = "was removed" if key not in meta else "was added" if key not in digests else "was changed"
            raise CheckpointError(f"{path}: the metadata's {key} {what} after export (its digest does not match); "
                                  f"refused: export again from the checkpoint")
    return meta
