"""Datasets: frame folders and video files on disk, or registered datasets such as ``synthetic``.

A data spec is a path (a folder in the standard layout, see :mod:`memad.data.layout`; a
defect-inspection folder; a single video file or a folder of video files) or the name of
a registered dataset, optionally with an argument after a colon (``synthetic``,
``digits:3``, ``avenue:/data/avenue``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError, MemadError
from ..frames import to_float
from ..registry import get_registry
from .clips import ClipBatches, epoch_order, iter_videos, video_frames
from .images import ImageSet, is_image_folder, load_image_folder
from .layout import is_video_folder, standard_split, video_file_split, video_folder_split
from .loading import load_frame_folder, load_split, load_split_for
from .sources import SplitSource, VideoEntry
from .video_files import VIDEO_SUFFIXES, open_video
from .videos import VideoSet, gather_clips

__all__ = ["VideoSet", "ImageSet", "SplitSource", "VideoEntry", "open_split", "SplitCache", "gather_clips",
           "to_float", "describe_spec", "load_split", "open_video", "ClipBatches", "epoch_order", "video_frames",
           "iter_videos", "load_frame_folder"]


def _split_spec(spec: str) -> tuple[str, str | None]:
    name, _, arg = str(spec).partition(":")
    return name, (arg or None)


def describe_spec(spec: str | Path) -> str:
    return str(spec)


def open_split(
    spec: str | Path | VideoSet,
    split: str,
    config: Mapping[str, Any],
    labels: str | Path | None = None,
) -> VideoSet:
    """Load ``split`` (``training`` or ``testing``) of ``spec`` shaped as ``config['data']`` says.

    A single video file, or a folder of video files, is the same data for either split.
    Splits larger than ``data.memory_budget_gb`` come back backed by the on-disk frame cache
    (``data.in_memory``, see :mod:`memad.data.loading`).
    """
    from ..config import image_hw

    if isinstance(spec, VideoSet):
        return spec
    size = image_hw(config)
    channels = config["data"]["channels"]
    mask_size = config["data"]["pixel_eval_size"]
    path = Path(spec)
    reg = get_registry()
    name, arg = _split_spec(str(spec))
    if name in reg.names("dataset") and not path.exists():
        entry = reg.get("dataset", name)
        try:
            out = entry.obj(split, size, channels, labels=labels, mask_size=mask_size, arg=arg)
        except MemadError:
            raise
        except (ValueError, TypeError) as exc:  # a dataset plugin's own check, in its own words
            raise DataError(f"data {str(spec)!r}: dataset {name!r} ({entry.source}) refused it: {exc}") from exc
        return load_split_for(out, config) if isinstance(out, SplitSource) else out
    if not path.exists():
        known = ", ".join(reg.names("dataset"))
        raise DataError(f"data {str(spec)!r}: no such folder, and not a registered dataset ({known})")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(f"data {str(spec)!r}: a file, but not a video ({', '.join(VIDEO_SUFFIXES)}); expected a "
                            f"dataset folder, a video file or a registered dataset")
        return load_split_for(video_file_split(path, split, labels), config)
    if is_image_folder(path):  # defect-inspection layout: ROOT/train/good/*.png
        if labels is not None:
            raise DataError(f"{path}: an image folder takes its labels from the test folder names, not {labels}")
        return load_image_folder(path, split, size, channels, mask_size=mask_size)
    if is_video_folder(path):
        return load_split_for(video_folder_split(path, split, labels), config)
    return load_split_for(standard_split(path, split, labels), config)


class SplitCache:
    """Each split of ``data`` decoded once per data shape, shared by the runs that need it.

    Used where several presets or seeds run on one dataset (``memad compare``, the benchmarks).
    ``labels`` is the test split's label file, as :func:`open_split` takes it.
    """

    def __init__(self, data: Any, labels: str | Path | None = None):
        self.data, self.labels = data, labels
        self._sets: dict[tuple, VideoSet] = {}

    def get(self, split: str, config: Mapping[str, Any]) -> VideoSet:
        """``split`` shaped as ``config['data']`` says, decoded on first use."""
        d = config["data"]
        size = d["image_size"]
        key = (split, tuple(size) if isinstance(size, list) else size, d["channels"], d["pixel_eval_size"])
        if key not in self._sets:
            # Keep one shape at a time: presets usually share it, and frames can be large.
            self._sets = {k: v for k, v in self._sets.items() if k[1:] == key[1:]}
            self._sets[key] = open_split(self.data, split, config, labels=self.labels if split == "testing" else None)
        return self._sets[key]
