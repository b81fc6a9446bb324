"""The standard frame-folder layout used by MNAD and most video anomaly detection code::

    ROOT/training/frames/<video>/<frame>.jpg     normal videos
    ROOT/testing/frames/<video>/<frame>.jpg      test videos
    ROOT/testing/masks/<video>/<frame>.png       optional pixel masks (white = anomalous)
    ROOT/<name>.mat | <name>.npy                 optional frame labels

Frame names are numbers (any start, any zero padding), sorted numerically.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .labels import find_label_file, load_label_file
from .videos import VideoSet

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
SPLITS = ("training", "testing")


def _numbered_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
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


def _video_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected ROOT/{{training,testing}}/frames/<video>/<frame>.jpg)")
    dirs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if not dirs:
        raise DataError(f"{folder}: no video folders inside (expected {folder}/<video>/<frame>.jpg)")
    return dirs


def _read_frame(path: Path, size_hw: tuple[int, int], channels: int) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with Image.open(path) as img:
            img.load()
            orig = img.size
            img = img.convert("L" if channels == 1 else "RGB")
            img = img.resize((size_hw[1], size_hw[0]), Image.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc
    arr = np.asarray(img, dtype=np.uint8)
    return (arr[None] if channels == 1 else arr.transpose(2, 0, 1)), orig


def _read_mask(path: Path, size_hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """The mask resized so that any anomalous pixel keeps its cell, and whether it has one."""
    try:
        with Image.open(path) as img:
            full = np.asarray(img.convert("L")) > 127
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read mask ({exc})") from exc
    small = Image.fromarray(full.astype(np.uint8) * 255).resize((size_hw[1], size_hw[0]), Image.BOX)
    return np.asarray(small) > 0, bool(full.any())


def _workers() -> int:
    return min(16, (os.cpu_count() or 2) * 2)


def load_frame_folder(
    root: str | Path,
    split: str,
    image_size: tuple[int, int],
    channels: int,
    labels: str | Path | None = None,
    mask_size: int = 64,
) -> VideoSet:
    """Read one split of a frame-folder dataset into memory, resized to ``image_size``.

    For ``testing``, frame labels come from ``labels`` if given, else a ``.mat``/``.npy``
    in ``root``, else the masks folder; masks are loaded when present.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"split: expected one of {SPLITS}, got {split!r}")
    if not root.is_dir():
        raise DataError(f"dataset root {root} is not a folder")
    videos = _video_dirs(root / split / "frames")
    files_per_video = [_numbered_files(v, FRAME_SUFFIXES, "frame") for v in videos]
    all_files = [f for fs in files_per_video for f in fs]

    with ThreadPoolExecutor(_workers()) as pool:
        decoded = list(pool.map(lambda p: _read_frame(p, image_size, channels), all_files))
    sizes = {}
    for path, (_, orig) in zip(all_files, decoded):
        sizes.setdefault(orig, path)
    if len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise DataError(f"{root / split}: frames of mixed sizes: {p1} is {s1[0]}x{s1[1]}, {p2} is {s2[0]}x{s2[1]}")
    frames = torch.from_numpy(np.stack([a for a, _ in decoded]))
    lengths = [len(fs) for fs in files_per_video]
    names = [v.name for v in videos]
    source = str(root / split)

    label_arr = masks = None
    if split == "testing":
        mask_hw = _mask_size(image_size, mask_size)
        mask_root = root / "testing" / "masks"
        if mask_root.is_dir():
            masks, mask_labels = _load_masks(mask_root, videos, files_per_video, mask_hw)
        label_path = Path(labels) if labels is not None else find_label_file(root)
        if label_path is not None:
            label_arr = load_label_file(label_path, lengths)
        elif masks is not None:
            label_arr = mask_labels
    return VideoSet(frames, names, lengths, label_arr, masks, source, [str(p) for p in all_files])


def _mask_size(image_size: tuple[int, int], limit: int) -> tuple[int, int]:
    h, w = image_size
    scale = min(1.0, limit / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _load_masks(mask_root: Path, videos: list[Path], frame_files: list[list[Path]], size_hw: tuple[int, int]):
    paths: list[Path] = []
    for video, frames in zip(videos, frame_files):
        folder = mask_root / video.name
        if not folder.is_dir():
            raise DataError(f"{folder}: masks folder missing for test video {video.name!r}")
        by_number = {int(p.stem): p for p in _numbered_files(folder, (".png", ".bmp", ".jpg", ".tif"), "mask")}
        missing = [f.name for f in frames if int(f.stem) not in by_number]
        if missing:
            raise DataError(f"{folder}: no mask for {len(missing)} of {len(frames)} frames (first: {missing[0]})")
        paths.extend(by_number[int(f.stem)] for f in frames)
    with ThreadPoolExecutor(_workers()) as pool:
        read = list(pool.map(lambda p: _read_mask(p, size_hw), paths))
    masks = torch.from_numpy(np.stack([m for m, _ in read]))
    labels = np.array([has for _, has in read], dtype=np.int8)
    return masks, labels
