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

__all__ = ["VideoSet", "ImageSet", "open_split", "gather_clips", "to_float", "describe_spec"]


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
