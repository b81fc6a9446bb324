"""The standard dataset layout, a single video file and a folder of videos, as :class:`SplitSource` s.

The standard layout (MNAD's, plus video files)::

    ROOT/training/frames/<video>/<n>.jpg      normal videos as frame folders, or
    ROOT/training/videos/<video>.avi          ... as video files (.avi .mp4 .mkv .mov .webm)
    ROOT/testing/frames/<video>/<n>.jpg       test videos (frame folders or video files,
    ROOT/testing/videos/<video>.mp4           each split chooses on its own)
    ROOT/testing/masks/<video>/<n>.png        optional pixel masks (white = anomalous)
    ROOT/<name>.mat | <name>.npy              optional frame labels

Frame names are numbers (any start, any zero padding), sorted numerically; a video file's
masks are matched to its decoded frames in numeric order. Videos are ordered by name
length, then name (``2`` before ``10``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .folder import FRAME_SUFFIXES, MASK_SUFFIXES, SPLITS, numbered_files
from .labels import find_label_file
from .sources import SplitSource, VideoEntry
from .video_files import VIDEO_SUFFIXES

__all__ = ["standard_split", "video_file_split", "video_folder_split", "is_video_folder", "sort_key", "find_part",
           "require_spec_path", "video_files_in"]

_LAYOUT = "ROOT/{training,testing}/frames/<video>/<frame>.jpg or ROOT/{training,testing}/videos/<video>.mp4"


def sort_key(name: str) -> tuple[int, str]:
    """Videos by name length, then name: ``2`` before ``10``, ``01`` ... ``12`` as written."""
    return len(name), name


def _video_files(folder: Path, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> list[Path]:
    # "._x.avi" files are macOS metadata that archives made on a Mac carry along.
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("._")), key=lambda p: sort_key(p.stem))


def is_video_folder(path: str | Path) -> bool:
    """True for a folder holding video files directly (and no ``training``/``testing`` split)."""
    path = Path(path)
    if not path.is_dir() or any((path / s).is_dir() for s in SPLITS):
        return False
    return bool(_video_files(path))


def _frame_folder_videos(folder: Path) -> list[VideoEntry]:
    dirs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: sort_key(p.name))
    if not dirs:
        raise DataError(f"{folder}: no video folders inside (expected {folder}/<video>/<frame>.jpg)")
    return [VideoEntry(d.name, d, numbered_files(d, FRAME_SUFFIXES, "frame")) for d in dirs]


def _video_file_videos(folder: Path) -> list[VideoEntry]:
    files = _video_files(folder)
    if not files:
        raise DataError(f"{folder}: no video files inside (expected {folder}/<video>.mp4, one of "
                        f"{', '.join(VIDEO_SUFFIXES)})")
    stems = [p.stem for p in files]
    dup = next((s for s in stems if stems.count(s) > 1), None)
    if dup is not None:
        names = sorted(p.name for p in files if p.stem == dup)
        raise DataError(f"{folder}: two videos are named {dup!r} ({' and '.join(names)}); expected one file per video")
    return [VideoEntry(p.stem, p) for p in files]


def video_files_in(folder: Path, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> list[Path]:
    """The video files directly in ``folder`` (ending in ``suffixes``), ordered by :func:`sort_key`."""
    files = _video_files(folder, suffixes)
    if not files:
        raise DataError(f"{folder}: no video files ({', '.join(suffixes)}) in this folder")
    return files


def require_spec_path(name: str, arg: str | None) -> Path:
    """The folder of a ``name:PATH`` data spec, which must exist."""
    if not arg:
        raise DataError(f"dataset {name!r} needs the folder it was downloaded to: {name}:PATH")
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise DataError(f"{name}:{arg}: no such folder")
    return path


def find_part(root: Path, part: str, spec: str, parts: tuple[str, ...]) -> Path:
    """``root/part``, or ``root/<its only sub-folder>/part`` (an archive unpacked with its top folder).

    A missing part is a DataError listing every part of the dataset looked for, found or not.
    """
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")] if root.is_dir() else []
    for base in [root] + (subdirs if len(subdirs) == 1 else []):
        if (base / part).is_dir():
            return base / part
    looked = ", ".join(f"{root / p} ({'found' if (root / p).is_dir() else 'missing'})" for p in parts)
    raise DataError(f"{spec}:{root}: {part}/ not found; looked for {looked}")


def _attach_masks(mask_root: Path, videos: list[VideoEntry]) -> None:
    for video in videos:
        folder = mask_root / video.name
        if not folder.is_dir():
            raise DataError(f"{folder}: masks folder missing for test video {video.name!r}")
        found = numbered_files(folder, MASK_SUFFIXES, "mask")
        if video.frame_files is None:  # a video file: masks in numeric order, counted once decoded
            video.masks = found
            continue
        by_number = {int(p.stem): p for p in found}
        missing = [f.name for f in video.frame_files if int(f.stem) not in by_number]
        if missing:
            raise DataError(f"{folder}: no mask for {len(missing)} of {len(video.frame_files)} frames "
                            f"(first: {missing[0]})")
        video.masks = [by_number[int(f.stem)] for f in video.frame_files]


def _spec_hint(root: Path) -> str:
    """A pointer to the data spec that reads ``root`` when it is a benchmark as downloaded."""
    if (root / "training_videos").is_dir() or (root / "testing_videos").is_dir():
        return f"; this looks like CUHK Avenue as downloaded: use --data avenue:{root}"
    if (root / "Train").is_dir() or any((root / n).is_dir() for n in ("UCSDped1", "UCSDped2")):
        return f"; this looks like UCSD Ped1/Ped2 as downloaded: use --data ucsd:{root}"
    return ""


def standard_split(root: str | Path, split: str, labels: str | Path | None = None) -> SplitSource:
    """``split`` of a dataset in the standard layout (see the module docstring)."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"split: expected one of {SPLITS}, got {split!r}")
    if not root.is_dir():
        raise DataError(f"dataset root {root} is not a folder")
    frames_dir, videos_dir = root / split / "frames", root / split / "videos"
    if frames_dir.is_dir() and videos_dir.is_dir():
        raise DataError(f"{root / split}: both frames/ and videos/ are here; expected one of them per split")
    if videos_dir.is_dir():
        videos, where = _video_file_videos(videos_dir), videos_dir
    elif frames_dir.is_dir():
        videos, where = _frame_folder_videos(frames_dir), frames_dir
    else:
        raise DataError(f"{frames_dir}: folder not found (expected {_LAYOUT}){_spec_hint(root)}")
    label_file = None
    if split == "testing":
        mask_root = root / "testing" / "masks"
        if mask_root.is_dir():
            _attach_masks(mask_root, videos)
        label_file = Path(labels) if labels is not None else find_label_file(root)
    return SplitSource(videos, str(where), label_file, split)


def video_file_split(path: str | Path, split: str = "testing", labels: str | Path | None = None) -> SplitSource:
    """One video file as a split of one video (labels only from ``labels``)."""
    path = Path(path)
    return SplitSource([VideoEntry(path.stem, path)], str(path), Path(labels) if labels else None, split)


def video_folder_split(folder: str | Path, split: str = "testing", labels: str | Path | None = None) \
        -> SplitSource:
    """Every video file directly in ``folder``, one video each; labels from ``labels`` or the one
    ``.npy``/``.mat`` file in the folder."""
    folder = Path(folder)
    label_file = Path(labels) if labels is not None else (find_label_file(folder) if split == "testing" else None)
    return SplitSource(_video_file_videos(folder), str(folder), label_file, split)
