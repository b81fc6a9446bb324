"""``shanghaitech:PATH``: the ShanghaiTech Campus dataset as downloaded (Luo, Liu and Gao, ICCV 2017).

::

    PATH/training/videos/01_001.avi ...                 330 normal videos, 856x480
    PATH/testing/frames/01_0014/000.jpg ...             107 test videos as frame folders
    PATH/testing/test_frame_mask/01_0014.npy ...        per test video, 0/1 per frame
    PATH/testing/test_pixel_mask/01_0014.npy ...        per test video, (T, 480, 856) masks (optional)

Frame labels come from ``test_frame_mask``; the pixel masks, when their folder is there,
give pixel AUROC. Every label and mask file must have one entry per frame of its video.
Each video's scene is its name's part before ``_`` (``01_0014`` was filmed in scene ``01``), so
``memad eval`` reports the frame AUROC per scene.
"""

from __future__ import annotations

from pathlib import Path

from memad.data import SplitSource, VideoEntry
from memad.data.folder import FRAME_SUFFIXES, numbered_files
from memad.data.layout import find_part, require_spec_path, sort_key, video_files_in
from memad.errors import DataError
from memad.metrics import shanghaitech_scene

TRAIN, TEST = "training/videos", "testing/frames"
FRAME_MASK, PIXEL_MASK = "testing/test_frame_mask", "testing/test_pixel_mask"
PARTS = (TRAIN, TEST, FRAME_MASK)


def shanghaitech_split(root: str | Path, split: str, labels: str | Path | None = None) -> SplitSource:
    """``split`` of ShanghaiTech at ``root`` (see the module docstring)."""
    root = Path(root)
    if split == "training":
        folder = find_part(root, TRAIN, "shanghaitech", PARTS)
        return SplitSource([VideoEntry(p.stem, p, scene=_scene(p.stem)) for p in video_files_in(folder)], str(folder),
                           None, split)
    folder = find_part(root, TEST, "shanghaitech", PARTS)
    dirs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: sort_key(p.name))
    if not dirs:
        raise DataError(f"{folder}: no video folders inside (expected {folder}/01_0014/000.jpg ...)")
    videos = [VideoEntry(d.name, d, numbered_files(d, FRAME_SUFFIXES, "frame"), scene=_scene(d.name)) for d in dirs]
    base = folder.parent
    pixel_dir = base / "test_pixel_mask"
    if pixel_dir.is_dir():
        _attach(videos, pixel_dir, "masks", "pixel mask")
    if labels is not None:
        return SplitSource(videos, str(folder), Path(labels), split)
    _attach(videos, find_part(root, FRAME_MASK, "shanghaitech", PARTS), "labels", "frame label")
    return SplitSource(videos, str(folder), None, split)


def _scene(name: str) -> str | None:
    """The scene of a video named ``<scene>_<clip>``; None for a name of another form."""
    try:
        return shanghaitech_scene(name)
    except DataError:
        return None


def _attach(videos: list[VideoEntry], folder: Path, field: str, what: str) -> None:
    missing = []
    for video in videos:
        path = folder / f"{video.name}.npy"
        if not path.is_file():
            missing.append(str(path))
        setattr(video, field, path)
    if missing:
        raise DataError(f"{folder}: no {what} file for {len(missing)} of {len(videos)} test videos; looked for "
                        f"{', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))


def shanghaitech(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """ShanghaiTech Campus as downloaded: ``shanghaitech:PATH`` (see docs/datasets.md)."""
    return shanghaitech_split(require_spec_path("shanghaitech", arg), split, labels)
