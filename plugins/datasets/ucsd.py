"""``ucsd:PATH``: UCSD Anomaly Detection (Ped1, Ped2) as downloaded (Mahadevan et al., CVPR 2010).

``PATH`` is ``UCSDped1`` or ``UCSDped2`` (or a folder holding exactly one of them)::

    UCSDped2/Train/Train001/001.tif ...        normal videos, grey TIFF frames
    UCSDped2/Test/Test001/001.tif ...          test videos
    UCSDped2/Test/Test001_gt/001.bmp ...       pixel masks, where given (all of Ped2, 10 videos of Ped1)
    UCSDped2/Test/UCSDped2.m                   frame intervals per test video:
                                               ``TestVideoFile{end+1}.gt_frame = [61:180];``

A test video's frame labels come from its masks (a frame is anomalous when its mask has
a white pixel), or, for a video without a ``_gt`` folder, from the ``.m`` file's
intervals (1-based, inclusive; several per video as ``[5:90, 140:200]``). Pixel masks
are kept when every test video has them. macOS ``._`` files in the archive are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from memad.data import SplitSource, VideoEntry
from memad.data.layout import require_spec_path
from memad.errors import DataError

_ENTRY = re.compile(r"\w+\s*\{\s*(end\s*\+\s*1|\d+)\s*\}\s*\.\s*gt_frame\s*=\s*\[([^\]]*)\]")


def _numbered(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
             and not p.name.startswith("._") and p.stem.isdigit()]
    if not files:
        raise DataError(f"{folder}: no {'/'.join(suffixes)} files named by number (001.tif ...) in this folder")
    return sorted(files, key=lambda p: int(p.stem))


def dataset_folder(path: str | Path) -> Path:
    """``path`` itself when it holds Train/ and Test/, else its one UCSDped1/UCSDped2 subfolder."""
    path = Path(path)
    if (path / "Train").is_dir() and (path / "Test").is_dir():
        return path
    found = [path / n for n in ("UCSDped1", "UCSDped2") if (path / n / "Test").is_dir()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DataError(f"ucsd:{path}: holds both UCSDped1 and UCSDped2; choose one, e.g. ucsd:{found[1]}")
    raise DataError(f"ucsd:{path}: not a UCSD dataset folder; looked for {path / 'Train'} and {path / 'Test'}, and "
                    f"for {path / 'UCSDped1'} or {path / 'UCSDped2'} holding them")


def parse_gt_file(path: Path) -> dict[int, list[tuple[int, int]]]:
    """``{video number: [(start, end), ...]}`` (1-based, inclusive) from a UCSD ``.m`` ground-truth file."""
    intervals: dict[int, list[tuple[int, int]]] = {}
    count = 0
    for index, body in _ENTRY.findall(path.read_text(errors="replace")):
        count += 1
        k = count if "end" in index else int(index)
        spans = []
        for token in re.split(r"[,\s]+", body.strip()):
            if not token:
                continue
            start, _, end = token.partition(":")
            if not start.isdigit() or (end and not end.isdigit()):
                raise DataError(f"{path}: entry {k}: cannot read {token!r} as a frame interval (expected start:end)")
            spans.append((int(start), int(end or start)))
        intervals[k] = spans
    if not intervals:
        raise DataError(f"{path}: no 'TestVideoFile{{k}}.gt_frame = [start:end];' lines in this file")
    return intervals


def _interval_labels(spans: list[tuple[int, int]], n: int, where: str) -> np.ndarray:
    lab = np.zeros(n, dtype=np.int8)
    for start, end in spans:
        if not 1 <= start <= end <= n:
            raise DataError(f"{where}: interval [{start}:{end}] is outside frames 1..{n}")
        lab[start - 1:end] = 1
    return lab


def ucsd_split(path: str | Path, split: str, labels: str | Path | None = None) -> SplitSource:
    """``split`` of UCSD Ped1 or Ped2 at ``path`` (see the module docstring)."""
    root = dataset_folder(path)
    part = root / ("Train" if split == "training" else "Test")
    prefix = "Train" if split == "training" else "Test"
    dirs = sorted((p for p in part.iterdir() if p.is_dir() and re.fullmatch(rf"{prefix}\d+", p.name)),
                  key=lambda p: int(p.name[len(prefix):]))
    if not dirs:
        raise DataError(f"{part}: no video folders; looked for {part}/{prefix}001/001.tif ...")
    videos = [VideoEntry(d.name, d, _numbered(d, (".tif", ".tiff"))) for d in dirs]
    if split == "training":
        return SplitSource(videos, str(part), None, split)
    for video, d in zip(videos, dirs):
        gt = d.parent / f"{d.name}_gt"
        if gt.is_dir():
            by_number = {int(p.stem): p for p in _numbered(gt, (".bmp", ".png"))}
            missing = [f.name for f in video.frame_files if int(f.stem) not in by_number]
            if missing:
                raise DataError(f"{gt}: no mask for {len(missing)} of {len(video.frame_files)} frames "
                                f"(first: {missing[0]})")
            video.masks = [by_number[int(f.stem)] for f in video.frame_files]
    if labels is not None:
        return SplitSource(videos, str(part), Path(labels), split)
    unmasked = [v for v in videos if v.masks is None]
    if unmasked:
        m_files = sorted(part.glob("*.m")) + sorted(root.glob("*.m"))
        if not m_files:
            raise DataError(f"ucsd:{root}: test video {unmasked[0].name} has no {unmasked[0].name}_gt mask folder and "
                            f"no .m ground-truth file was found; looked for {part / (root.name + '.m')} "
                            f"(any *.m in {part} or {root})")
        intervals = parse_gt_file(m_files[0])
        for video in unmasked:
            k = int(video.name[len(prefix):])
            if k not in intervals:
                raise DataError(f"{m_files[0]}: no gt_frame entry for test video {video.name} (entry {k}); "
                                f"the file has {len(intervals)} entries")
            video.labels = _interval_labels(intervals[k], len(video.frame_files), f"{m_files[0]}: entry {k}")
    return SplitSource(videos, str(part), None, split)


def ucsd(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """UCSD Ped1/Ped2 as downloaded: ``ucsd:PATH`` (see docs/datasets.md)."""
    return ucsd_split(require_spec_path("ucsd", arg), split, labels)
