"""Datasets: frame folders on disk, or registered generated datasets such as ``synthetic``.

A data spec is a folder path (the standard frame-folder layout, see
:mod:`memad.data.folder`) or the name of a registered dataset, optionally with an
argument after a colon (``synthetic``, ``digits:3``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError
from ..registry import get_registry
from .folder import load_frame_folder
from .images import ImageSet, is_image_folder, load_image_folder
from .videos import VideoSet, gather_clips, to_float

__all__ = ["VideoSet", "ImageSet", "open_split", "SplitCache", "gather_clips", "to_float", "describe_spec"]


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
    """Load ``split`` (``training`` or ``testing``) of ``spec`` shaped as ``config['data']`` says."""
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
        return reg.get("dataset", name).obj(split, size, channels, labels=labels, mask_size=mask_size, arg=arg)
    if not path.exists():
        known = ", ".join(reg.names("dataset"))
        raise DataError(f"data {str(spec)!r}: no such folder, and not a registered dataset ({known})")
    if is_image_folder(path):  # defect-inspection layout: ROOT/train/good/*.png
        if labels is not None:
            raise DataError(f"{path}: an image folder takes its labels from the test folder names, not {labels}")
        return load_image_folder(path, split, size, channels, mask_size=mask_size)
    return load_frame_folder(path, split, size, channels, labels=labels, mask_size=mask_size)


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
