"""Frame-level ground truth: MNAD-style ``.npy`` (1-D or 2-D), ``.mat`` frame intervals,
or pixel masks (a frame is anomalous when its mask has a white pixel)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError


def load_npy_labels(path: Path, lengths: Sequence[int]) -> np.ndarray:
    """All test frames' labels concatenated in video order, shape (N,) or (1, N)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read labels as a numpy array ({exc})") from exc
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{path}: expected labels of shape (N,) or (1, N), got {arr.shape}")
    total = int(sum(lengths))
    if arr.shape[0] != total:
        raise DataError(f"{path}: {arr.shape[0]} labels, but the test videos have {total} frames "
                        f"({len(lengths)} videos)")
    return binary_labels(arr, path, "index")


def binary_labels(arr: np.ndarray, where: object, position: str = "frame") -> np.ndarray:
    """``arr`` as int8 0/1 labels; any other value is an error naming ``where`` and its ``position``."""
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise DataError(f"{where}: labels must be 0 or 1, found {arr[bad][0].item()!r} at {position} "
                        f"{int(np.argmax(bad))}")
    return arr.astype(np.int8)


def load_mat_labels(path: Path, lengths: Sequence[int]) -> np.ndarray:
    """A ``.mat`` whose ``gt`` holds, per video, [start; end] pairs (1-based, inclusive)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
    if "gt" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: expected a variable 'gt' of frame intervals, found {keys}")
    cells = np.asarray(mat["gt"]).reshape(-1)
    if len(cells) != len(lengths):
        raise DataError(f"{path}: 'gt' has intervals for {len(cells)} videos, but there are {len(lengths)} test videos")
    out = []
    for v, (cell, n) in enumerate(zip(cells, lengths)):
        lab = np.zeros(n, dtype=np.int8)
        iv = np.asarray(cell, dtype=np.int64)
        if iv.size:
            iv = iv.reshape(2, -1) if iv.shape[0] == 2 else iv.reshape(-1, 2).T
            for start, end in iv.T:
                if not 1 <= start <= end <= n:
                    raise DataError(f"{path}: video {v + 1}: interval [{start}, {end}] is outside frames 1..{n}")
                lab[start - 1:end] = 1
        out.append(lab)
    return np.concatenate(out)


def load_label_file(path: str | Path, lengths: Sequence[int]) -> np.ndarray:
    """Labels from a ``.npy`` or ``.mat`` file, checked against the videos' lengths."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file {path} does not exist")
    if path.suffix == ".npy":
        return load_npy_labels(path, lengths)
    if path.suffix == ".mat":
        return load_mat_labels(path, lengths)
    raise DataError(f"label file {path}: expected a .npy or .mat file, got {path.suffix or 'no extension'!r}")


def find_label_file(root: Path) -> Path | None:
    """A ``.mat`` or ``.npy`` label file directly in the dataset root, if exactly one is there."""
    found = sorted(p for p in root.iterdir() if p.suffix in (".mat", ".npy") and p.is_file())
    if len(found) > 1:
        raise DataError(f"{root}: several label files ({', '.join(p.name for p in found)}); pass one with --labels")
    return found[0] if found else None
