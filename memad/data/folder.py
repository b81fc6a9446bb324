"""Frames and masks as image files: reading, converting and resizing one image.

Every image is converted by the frame door (:func:`memad.frames.from_image`), as decoded video
frames are, so a video and a folder of its frames as images give the same input.
The dataset layouts built on top live in :mod:`memad.data.layout`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..frames import from_image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MASK_SUFFIXES = (".png", ".bmp", ".jpg", ".tif")
SPLITS = ("training", "testing")


def _read_frame(path: Path, size_hw: tuple[int, int], channels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file as ``(C, H, W)`` uint8, and its original ``(width, height)``."""
    try:
        with Image.open(path) as img:
            img.load()
            return from_image(img, size_hw, channels), img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


def shrink_mask(full: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A boolean mask resized so that any anomalous pixel keeps its cell."""
    small = Image.fromarray(full.astype(np.uint8) * 255).resize((size_hw[1], size_hw[0]), Image.BOX)
    return np.asarray(small) > 0


def _read_mask(path: Path, size_hw: tuple[int, int], with_size: bool = False):
    """The mask resized so that any anomalous pixel keeps its cell, and whether it has one (and, with
    ``with_size``, its own ``(width, height)``)."""
    try:
        with Image.open(path) as img:
            full = np.asarray(img.convert("L")) > 127
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read mask ({exc})") from exc
    small, anomalous = shrink_mask(full, size_hw), bool(full.any())
    return (small, anomalous, (full.shape[1], full.shape[0])) if with_size else (small, anomalous)


def _workers() -> int:
    return min(16, (os.cpu_count() or 2) * 2)


def _mask_size(image_size: tuple[int, int], limit: int) -> tuple[int, int]:
    h, w = image_size
    scale = min(1.0, limit / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def numbered_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """The files of ``folder`` ending in ``suffixes``, named by numbers, in numeric order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if not files:
        raise DataError(f"{folder}: no {what} files ({'/'.join(suffixes)}) in this folder")
    bad = [p.name for p in files if not p.stem.isdigit()]
    if bad:
        raise DataError(f"{folder}: {what} names must be numbers (e.g. 000.jpg), found {bad[0]!r}"
                        + (f" and {len(bad) - 1} more" if len(bad) > 1 else ""))
    files.sort(key=lambda p: int(p.stem))
    stems = [int(p.stem) for p in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        names = sorted(p.name for p in files if int(p.stem) == dup)
        raise DataError(f"{folder}: two {what} files are numbered {dup} ({' and '.join(names)}); "
                        f"expected one file per number")
    return files

