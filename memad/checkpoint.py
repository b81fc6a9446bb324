"""Checkpoints: config, weights, memory items (and optimiser state for resuming).

Files hold only tensors and plain data, are read with ``torch.load(weights_only=True)``
(which refuses pickled objects), and are written atomically: a temporary file in the
same folder, flushed and renamed over the old one, so a kill never leaves a truncated
checkpoint in place of a good one.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

FORMAT = "memad-checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600), and a shared checkpoint should get the mode
    # (umask) any new file gets. O_EXCL and a random name keep it just as safe.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
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
    return data


def save_checkpoint(path: str | Path, detector, **extra: Any) -> Path:
    """Write ``detector``'s config and weights (plus ``extra`` plain data) to ``path``."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": detector.config,
        "model": detector.state_dict(),
        "threshold": detector.threshold_,
        "history": detector.history_,
        **extra,
    }
    return atomic_save(payload, path)


def load(path: str | Path, device: str | torch.device = "cpu"):
    """A detector from a checkpoint written by :meth:`Detector.save` or by training.

    >>> import memad, tempfile, os
    >>> det = memad.build("ae", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
    >>> path = det.save(os.path.join(tempfile.mkdtemp(), "ae.pt"))
    >>> memad.load(path).count_parameters() == det.count_parameters()
    True
    """
    from .detector import Detector

    data = read_checkpoint(path)
    det = Detector(data["config"])
    missing, unexpected = det.load_state_dict(data["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the config: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    det.threshold_ = data.get("threshold")
    det.history_ = list(data.get("history") or [])
    return det.to(device).eval()
