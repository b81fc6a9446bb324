"""Where commands write: every output path checked before any work starts, in one place.

A command that trains for an hour must not fail at the end because ``--out`` names a file, a
folder under a file, or a folder it may not write in. :func:`out_folder` and :func:`out_file`
check what a path names and whether it can be written (its nearest existing ancestor must be a
writable folder), and say what was expected in one line, naming the option.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> out_folder(root / "runs" / "a").name
'a'
>>> (root / "f.txt").write_text("x") and None
>>> out_folder(root / "f.txt" / "sub")
Traceback (most recent call last):
...
memad.errors.ConfigError: --out ...f.txt/sub: ...f.txt is a file, so there can be no folder under it
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .errors import ConfigError

__all__ = ["out_folder", "out_file"]


def _writable_ancestor(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder this process can write in."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, so there can be no folder under it")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{option} {path}: cannot write in {parent} (permission denied)")
            return


def out_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a folder to write into (it may exist as a folder or be creatable); not created here."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file; expected a folder (a new one, or one of this command's)")
    _writable_ancestor(path, option)
    return path


def out_file(path: str | Path, option: str = "--out", *, suffixes: Sequence[str] = (),
             default_name: str | None = None) -> Path:
    """``path`` as a file to write: an existing folder means ``folder/default_name`` (when given);
    ``suffixes`` are the endings allowed."""
    path = Path(path)
    if path.is_dir():
        if default_name is None:
            raise ConfigError(f"{option} {path}: is a folder; expected a file name")
        path = path / default_name
        if path.is_dir():
            raise ConfigError(f"{option} {path}: is a folder; expected a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: expected a file ending in {' or '.join(suffixes)}, got "
                          f"{path.suffix or 'no ending'}")
    _writable_ancestor(path.parent, option)
    return path
