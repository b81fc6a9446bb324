"""``avenue:PATH``: CUHK Avenue as downloaded (Lu, Shi and Jia, ICCV 2013).

``PATH`` is the folder the two archives were unpacked into (or one level above it)::

    PATH/training_videos/01.avi ... 16.avi                       normal videos, 640x360, 25 fps
    PATH/testing_videos/01.avi ... 21.avi                        test videos
    PATH/ground_truth_demo/testing_label_mask/1_label.mat ...    per test video, ``volLabel``: a 1 x T cell
                                                                 of 360 x 640 masks (1 = anomalous)

A frame is anomalous when its mask has a 1; the masks also give pixel AUROC. The label
file's frame count must equal the video's decoded frame count.
"""

from __future__ import annotations

from pathlib import Path

from memad.data import SplitSource, VideoEntry
from memad.data.layout import find_part, require_spec_path, video_files_in
from memad.errors import DataError

TRAIN, TEST, MASKS = "training_videos", "testing_videos", "ground_truth_demo/testing_label_mask"


def avenue_split(root: str | Path, split: str, labels: str | Path | None = None) -> SplitSource:
    """``split`` of CUHK Avenue at ``root`` (see the module docstring)."""
    root = Path(root)
    folder = find_part(root, TRAIN if split == "training" else TEST, "avenue", (TRAIN, TEST, MASKS))
    videos = [VideoEntry(p.stem, p) for p in video_files_in(folder, (".avi",))]
    if split == "training":
        return SplitSource(videos, str(folder), None, split)
    if labels is not None:
        return SplitSource(videos, str(folder), Path(labels), split)
    mask_dir = find_part(root, MASKS, "avenue", (TRAIN, TEST, MASKS))
    for video in videos:
        if not video.name.isdigit():
            raise DataError(f"{video.path}: Avenue test videos are named by number (01.avi ...), found "
                            f"{video.path.name!r}")
        video.masks = mask_dir / f"{int(video.name)}_label.mat"
    missing = [str(v.masks) for v in videos if not v.masks.is_file()]
    if missing:
        raise DataError(f"avenue:{root}: no label file for {len(missing)} of {len(videos)} test videos; looked for "
                        f"{', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
    return SplitSource(videos, str(folder), None, split)


def avenue(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """CUHK Avenue as downloaded: ``avenue:PATH`` (see docs/datasets.md)."""
    return avenue_split(require_spec_path("avenue", arg), split, labels)
