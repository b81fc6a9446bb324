"""Checkpoints: config, weights, memory items, calibration (and optimiser state for resuming).

Files hold only tensors and plain data, are read with ``torch.load(weights_only=True)``
(which refuses pickled objects), and are written atomically: a temporary file in the
same folder, flushed and renamed over the old one, so a kill never leaves a truncated
checkpoint in place of a good one.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .fileio import atomic_write

FORMAT = "memad-checkpoint"
#: 2: MNAD's test-time gate moved from ``test.gate`` to the memory (``memory.gate``); checkpoints
#: carry a ``calibration``. 3: ``data.normalise`` (clips scaled by their own mean and spread) became the
#: default; older files were trained on the frames as read. Older files are upgraded on reading
#: (:func:`upgrade`). Files also carry ``components``: the distribution every component came from (absent
#: in older files).
VERSION = 3


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a memad checkpoint safely; anything but tensors and plain data is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    # torch.save writes a zip archive; anything else (a cut-off file, a bare pickle) is never unpickled.
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): not a torch.save zip "
                              f"archive ({size} bytes)")
    # torch.load does not check the archive's CRCs, so flipped bits in a tensor would load silently.
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {exc}") from exc
    if damaged is not None:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {damaged} fails its "
                              f"CRC check")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Quote only what was refused: torch's own text also suggests weights_only=False, which would run it.
        # torch's wording varies by version ("GLOBAL x was not an allowed global", "unsupported GLOBAL x whose
        # module y is blocked"): the name after GLOBAL is what the pickle would call.
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"it would call or build {found.group(1)}" if found else "unsupported pickle content"
        raise CheckpointError(f"{path}: refused: the file holds objects other than tensors and plain data "
                              f"({what}); only load it unsafely if you trust where it came from") from exc
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a memad checkpoint (no 'format: {FORMAT}' field)")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data['version']} is newer than this memad ({VERSION})")
    return upgrade(data, path)


def upgrade(data: dict[str, Any], path: str | Path = "checkpoint") -> dict[str, Any]:
    """A checkpoint of an older version in today's form (the file itself is not changed).

    Version 1 kept MNAD's test-time gate in ``test.gate``; it now belongs to the memory that
    defines it, ``memory.gate``. Its ``train.amp: true`` meant bf16 on CUDA only, now ``auto``.
    Versions 1 and 2 had no ``data.normalise``: their networks were trained on the frames as read
    (``none``), which the default (``clip``) would no longer give them.
    """
    version = data.get("version", 1)
    config = data.get("config")
    if version >= VERSION or not isinstance(config, dict):
        return data
    if version < 2:
        test = dict(config.get("test") or {})
        gate = test.pop("gate", None)
        memory = config.get("memory")
        if gate is not None:
            if not isinstance(memory, dict):
                raise CheckpointError(f"{path}: version-1 checkpoint with test.gate={gate} but no memory section to "
                                      f"move it to; rebuild the model and save it again")
            memory = {**memory, "gate": gate}
        train = dict(config.get("train") or {})
        if train.get("amp") is True:
            train["amp"] = "auto"
        config = {**config, "test": test, "memory": memory, "train": train}
    data_section = config.get("data") or {}
    if isinstance(data_section, dict):
        config = {**config, "data": {"normalise": "none", **data_section}}
    return {**data, "version": VERSION, "config": config}


def save_checkpoint(path: str | Path, config: dict[str, Any], model: dict[str, Any], **fields: Any) -> Path:
    """Write a checkpoint: ``config``, the network's ``model`` state dict, and ``fields`` (plain data:
    threshold, calibration, history, optimiser state...), atomically."""
    return atomic_save({"format": FORMAT, "version": VERSION, "config": config, "model": model, **fields}, path)


def update_checkpoint(path: str | Path, target: str | Path | None = None, **fields: Any) -> Path:
    """Rewrite the checkpoint at ``path`` (to ``target``, default in place) with ``fields`` replaced,
    everything else (optimiser state for resuming...) kept; atomically."""
    data = read_checkpoint(path)
    data.update(fields)
    return atomic_save(data, target if target is not None else path)
