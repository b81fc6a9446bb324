"""A split described as files on disk, before anything is decoded.

Layouts (the standard one, a single video, the benchmark datasets as downloaded) turn a
folder into a :class:`SplitSource`; :func:`memad.data.loading.load_split` then decodes it,
into memory or into the on-disk frame cache. A registered dataset may return one too.

>>> entry = VideoEntry("01", Path("ROOT/testing/videos/01.avi"))
>>> entry.is_video_file, SplitSource([entry], "ROOT/testing").split
(True, 'testing')
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from .folder import _read_mask, _workers, shrink_mask
from .labels import binary_labels

__all__ = ["VideoEntry", "SplitSource", "read_masks", "video_labels"]


@dataclass
class VideoEntry:
    """One video of a split.

    Attributes:
        name: the video's name (its folder or file name without the ending).
        path: a video file, or the folder holding the frames.
        frame_files: the frame images in order; None when ``path`` is a video file.
        masks: pixel masks: one image per frame (white = anomalous), or one array file,
            a ``.npy`` of shape ``(T, H, W)`` or a ``.mat`` whose ``volLabel`` cell holds one
            ``H x W`` mask per frame (nonzero = anomalous); None without masks.
        labels: 0/1 per frame: an array, or a ``.npy`` file holding one; None to take them
            from the masks (or from the split's label file).
        scene: the scene (camera view) the video was filmed in, for datasets of several
            scenes; the split's :attr:`VideoSet.scenes` when every video has one.
    """

    name: str
    path: Path
    frame_files: list[Path] | None = None
    masks: list[Path] | Path | None = None
    labels: np.ndarray | Path | None = None
    scene: str | None = None

    @property
    def is_video_file(self) -> bool:
        return self.frame_files is None

    def files(self) -> list[Path]:
        """Every file this video's frames and masks are read from (the frame cache's key)."""
        out = [self.path] if self.frame_files is None else list(self.frame_files)
        if isinstance(self.masks, Path):
            out.append(self.masks)
        elif self.masks:
            out.extend(self.masks)
        return out


@dataclass
class SplitSource:
    """The videos of one split and where its labels come from.

    Attributes:
        videos: the videos, in the order their frames (and any label file) are concatenated.
        source: where the split lives, for messages and the cache's folder name.
        label_file: a ``.npy``/``.mat`` label file for all videos (``--labels``), or None.
        split: ``training`` or ``testing``; labels and masks are read for ``testing`` only.
    """

    videos: list[VideoEntry]
    source: str
    label_file: Path | None = None
    split: str = field(default="testing")

    @property
    def scenes(self) -> list[str] | None:
        """Each video's scene when every video declares one, else None."""
        if self.videos and all(v.scene is not None for v in self.videos):
            return [str(v.scene) for v in self.videos]
        return None

    @property
    def has_masks(self) -> bool:
        """True when every video has pixel masks (pixel AUROC needs all of them)."""
        return self.split == "testing" and bool(self.videos) and all(v.masks is not None for v in self.videos)


def _check_count(found: int, n: int, what: str, where: object, video: VideoEntry) -> None:
    if found != n:
        raise DataError(f"{where}: {found} {what} for the {n} frames of video {video.name!r} ({video.path}); "
                        f"expected one per frame")


def read_masks(video: VideoEntry, n: int, size_hw: tuple[int, int], frame_size: tuple[int, int] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Video ``video``'s ``n`` masks shrunk to ``size_hw`` (bool ``(n, h, w)``), and per frame
    whether its full-size mask has an anomalous pixel (bool ``(n,)``). With ``frame_size`` (the
    frames' native ``(width, height)``), a mask of another size is an error naming both: stretched
    onto its frame it would mark the wrong pixels."""
    masks = video.masks
    if isinstance(masks, list):
        _check_count(len(masks), n, "masks", masks[0].parent if masks else video.path, video)
        with ThreadPoolExecutor(_workers()) as pool:
            read = list(pool.map(lambda p: _read_mask(p, size_hw, with_size=True), masks))
        for path, (_, _, size) in zip(masks, read):
            _check_mask_size(path, size, frame_size, video)
        return np.stack([m for m, _, _ in read]), np.array([a for _, a, _ in read], dtype=bool)
    if isinstance(masks, Path):
        frames = _mask_arrays(masks)
        _check_count(len(frames), n, "masks", masks, video)
        small = np.empty((n, *size_hw), dtype=bool)
        anomalous = np.empty(n, dtype=bool)
        for i, full in enumerate(frames):
            full = np.asarray(full) != 0
            _check_mask_size(f"{masks} (mask {i})", (full.shape[1], full.shape[0]), frame_size, video)
            small[i], anomalous[i] = shrink_mask(full, size_hw), full.any()
        return small, anomalous
    raise DataError(f"video {video.name!r} ({video.path}) has no masks")


def _check_mask_size(where: object, size: tuple[int, int], frame_size: tuple[int, int] | None,
                     video: VideoEntry) -> None:
    if frame_size is not None and tuple(size) != tuple(frame_size):
        raise DataError(f"{where}: the mask is {size[0]}x{size[1]} (width x height), the frames of video "
                        f"{video.name!r} are {frame_size[0]}x{frame_size[1]}; expected masks the size of their frames")


def _mask_arrays(path: Path) -> Sequence[np.ndarray]:
    """The per-frame masks of one array file (``.npy`` ``(T, H, W)`` or ``.mat`` ``volLabel``)."""
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read pixel masks as a numpy array ({exc})") from exc
        if arr.ndim != 3:
            raise DataError(f"{path}: expected pixel masks of shape (frames, height, width), got {arr.shape}")
        return arr
    if path.suffix == ".mat":
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as exc:  # scipy raises several unrelated types for a bad file
            raise DataError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
        if "volLabel" not in mat:
            keys = sorted(k for k in mat if not k.startswith("__"))
            raise DataError(f"{path}: expected a variable 'volLabel' (a cell of per-frame masks), found {keys}")
        cells = np.asarray(mat["volLabel"]).reshape(-1)
        return [np.asarray(c) for c in cells]
    raise DataError(f"{path}: pixel masks must be a .npy or .mat file, got {path.suffix!r}")


def video_labels(video: VideoEntry, n: int) -> np.ndarray | None:
    """Video ``video``'s own labels (0/1 int8, length checked against ``n``), or None if it has none."""
    labels = video.labels
    if labels is None:
        return None
    where: object = labels if isinstance(labels, Path) else f"labels of video {video.name!r}"
    if isinstance(labels, Path):
        try:
            labels = np.load(labels, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: cannot read frame labels as a numpy array ({exc})") from exc
    arr = np.asarray(labels).reshape(-1)
    if arr.shape[0] != n:
        raise DataError(f"{where}: {arr.shape[0]} frame labels, but video {video.name!r} ({video.path}) has {n} "
                        f"decoded frames; expected one label per frame")
    return binary_labels(arr, where)
