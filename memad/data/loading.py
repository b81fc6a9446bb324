"""Decode a :class:`SplitSource` into a :class:`VideoSet`: in memory, or through the frame cache.

``data.in_memory`` decides: ``true`` decodes into one uint8 array in memory; ``false``
goes through the on-disk frame cache (:mod:`memad.data.cache`: decoded once, reused,
frames memory-mapped); ``auto`` keeps the split in memory when its uint8 frames fit
``data.memory_budget_gb`` and uses the cache otherwise. Either way frames are decoded in
blocks and written where they belong as they come, so the memory a load takes beyond its
result is a few blocks, not the split.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from .cache import open_or_build
from .folder import _mask_size, _read_frame, _workers
from .labels import load_label_file
from .layout import standard_split
from .sources import SplitSource, VideoEntry, read_masks, video_labels
from .video_files import VideoStream
from .videos import VideoSet

__all__ = ["load_split", "load_split_for", "load_frame_folder", "estimate_frames", "keeps_in_memory"]

BLOCK_FRAMES = 128  # frames decoded per block: a few MB at 256x256, enough to keep the threads busy


class _RamSink:
    """Frames appended into one growing uint8 array (grown by half when an estimate was short)."""

    def __init__(self, estimate: int, frame_shape: tuple[int, ...]):
        self.array = np.empty((max(estimate, 1), *frame_shape), dtype=np.uint8)
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        end = self.frames + block.shape[0]
        if end > self.array.shape[0]:
            grown = np.empty((max(end, int(self.array.shape[0] * 1.5)), *self.array.shape[1:]), dtype=np.uint8)
            grown[:self.frames] = self.array[:self.frames]
            self.array = grown
        self.array[self.frames:end] = block
        self.frames = end

    def result(self) -> np.ndarray:
        # Trim only when the estimate was far off: the copy costs a moment, the slack memory longer.
        return self.array[:self.frames].copy() if self.frames < 0.9 * self.array.shape[0] else self.array[:self.frames]


def estimate_frames(src: SplitSource) -> int:
    """Frames in the split: exact for frame folders, what the containers declare for video files."""
    total = 0
    for video in src.videos:
        if video.frame_files is not None:
            total += len(video.frame_files)
            continue
        with VideoStream(video.path) as stream:
            count = stream.frame_count
            if count is None:  # .mkv/.webm declare a duration, not a count
                duration = stream._container.duration
                count = int(duration / 1e6 * stream.fps) if duration and stream.fps else 0
            total += count
    return total


def keeps_in_memory(setting: Any, frames: int, frame_bytes: int, budget_gb: float) -> bool:
    """Whether ``data.in_memory`` = ``setting`` keeps a split of ``frames`` frames in memory."""
    if setting is True or setting is False:
        return setting
    if setting != "auto":
        raise ConfigError(f"data.in_memory={setting!r}: expected true, false or auto")
    return frames * frame_bytes <= budget_gb * 2**30


def _blocks(video: VideoEntry, size_hw: tuple[int, int], channels: int, pool: ThreadPoolExecutor) \
        -> Iterator[tuple[np.ndarray, tuple[int, int], str, float | None]]:
    """Video ``video`` in ``(k, C, H, W)`` blocks, each with its frames' native (width, height), where
    they came from and the video's fps (None for frame folders)."""
    if video.frame_files is None:
        with VideoStream(video.path, size_hw=size_hw, channels=channels) as stream:
            native, fps = (stream.width, stream.height), float("nan") if stream.fps is None else stream.fps
            for block in stream.chunks(BLOCK_FRAMES):
                yield block, native, str(video.path), fps
        return
    files = video.frame_files
    for s in range(0, len(files), BLOCK_FRAMES):
        part = files[s:s + BLOCK_FRAMES]
        decoded = list(pool.map(lambda p: _read_frame(p, size_hw, channels), part))
        sizes = {orig for _, orig in decoded}
        if len(sizes) == 1:
            yield np.stack([a for a, _ in decoded]), decoded[0][1], str(part[0]), None
        else:  # report the first frame of each size
            for (arr, orig), path in zip(decoded, part):
                yield arr[None], orig, str(path), None


def _fill(src: SplitSource, sink, size_hw: tuple[int, int], channels: int, mask_hw: tuple[int, int],
          estimate: int, progress: bool, what: str) -> dict[str, Any]:
    """Decode every video of ``src`` into ``sink``; the manifest fields (names, lengths, fps, masks)."""
    lengths: list[int] = []
    fps: list[float] = []
    seen: dict[tuple[int, int], str] = {}
    masks, mask_any = [], []
    want_masks = src.split == "testing" and any(v.masks is not None for v in src.videos)
    bar = tqdm(total=estimate or None, desc=what, unit="frame", disable=not progress, delay=1.0, leave=False,
               dynamic_ncols=True)
    with ThreadPoolExecutor(_workers()) as pool, bar:
        for video in src.videos:
            n, video_fps = 0, None
            for block, native, where, video_fps in _blocks(video, size_hw, channels, pool):
                if native not in seen:
                    seen[native] = where
                    if len(seen) > 1:
                        (s1, p1), (s2, p2) = list(seen.items())[:2]
                        raise DataError(f"{src.source}: frames of mixed sizes: {p1} is {s1[0]}x{s1[1]}, {p2} is "
                                        f"{s2[0]}x{s2[1]}; expected one frame size per split")
                sink.write(block)
                n += block.shape[0]
                bar.update(block.shape[0])
            if n == 0:
                raise DataError(f"{video.path}: no frames decoded; expected a video with at least one frame")
            lengths.append(n)
            if video_fps is not None:
                fps.append(video_fps)
            if want_masks:
                if video.masks is None:
                    masks.append(np.zeros((n, *mask_hw), dtype=bool))
                    mask_any.append(np.full(n, -1, dtype=np.int8))
                else:
                    m, a = read_masks(video, n, mask_hw, frame_size=native)
                    masks.append(m)
                    mask_any.append(a.astype(np.int8))
    return {"names": [v.name for v in src.videos], "lengths": lengths,
            "fps": fps if len(fps) == len(lengths) else None, "native": list(next(iter(seen))),
            "masks": np.concatenate(masks) if masks else None,
            "mask_any": np.concatenate(mask_any) if mask_any else None}


def _labels(src: SplitSource, lengths: list[int], mask_any: np.ndarray | None) -> np.ndarray | None:
    """Frame labels: the split's label file, else each video's own labels, else its masks."""
    if src.split != "testing":
        return None
    if src.label_file is not None:
        return load_label_file(src.label_file, lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    per_video: list[np.ndarray | None] = []
    for i, (video, n) in enumerate(zip(src.videos, lengths)):
        own = video_labels(video, n)
        if own is None and mask_any is not None and (mask_any[offsets[i]:offsets[i + 1]] >= 0).all():
            own = mask_any[offsets[i]:offsets[i + 1]].astype(np.int8)
        per_video.append(own)
    missing = [v for v, lab in zip(src.videos, per_video) if lab is None]
    if len(missing) == len(per_video):
        return None
    if missing:
        raise DataError(f"{src.source}: test video {missing[0].name!r} ({missing[0].path}) has no frame labels (no "
                        f"label file, no masks) while {len(per_video) - len(missing)} others have them")
    return np.concatenate(per_video)


def load_split(src: SplitSource, image_size: tuple[int, int], channels: int, *, mask_size: int = 64,
               in_memory: bool | str = "auto", memory_budget_gb: float = 4.0, cache_dir: str | None = None,
               progress: bool = True) -> VideoSet:
    """Decode ``src`` resized to ``image_size``, in memory or through the frame cache (module docstring)."""
    size_hw = (int(image_size[0]), int(image_size[1]))
    mask_hw = _mask_size(size_hw, mask_size)
    frame_shape = (channels, *size_hw)
    estimate = estimate_frames(src)
    what = f"decoding {src.source}"
    if keeps_in_memory(in_memory, estimate, int(np.prod(frame_shape)), memory_budget_gb):
        sink = _RamSink(estimate, frame_shape)
        meta = _fill(src, sink, size_hw, channels, mask_hw, estimate, progress, what)
        frames, store = torch.from_numpy(sink.result()), None
        masks, mask_any = meta["masks"], meta["mask_any"]
    else:
        entry = open_or_build(src, size_hw, channels, mask_hw, cache_dir=cache_dir, build=lambda sink: _fill(
            src, sink, size_hw, channels, mask_hw, estimate, progress, what + " into the frame cache"))
        meta, store = entry.manifest, entry.store
        frames = torch.from_numpy(store.memmap())
        masks, mask_any = entry.masks()
    lengths = [int(n) for n in meta["lengths"]]
    labels = _labels(src, lengths, mask_any)
    keep_masks = masks is not None and src.has_masks
    frame_files = ([str(f) for v in src.videos for f in v.frame_files]
                   if all(v.frame_files is not None for v in src.videos) else [])
    return VideoSet(frames, list(meta["names"]), lengths, labels, torch.from_numpy(masks) if keep_masks else None,
                    src.source, frame_files, fps=meta["fps"], video_paths=[str(v.path) for v in src.videos],
                    store=store, scenes=src.scenes)


def load_split_for(src: SplitSource, config: Mapping[str, Any]) -> VideoSet:
    """:func:`load_split` with the shape and memory settings of ``config['data']``."""
    from ..config import image_hw

    d = config["data"]
    progress = bool(config.get("train", {}).get("progress", True))
    return load_split(src, image_hw(config), d["channels"], mask_size=d.get("pixel_eval_size", 64),
                      in_memory=d.get("in_memory", "auto"), memory_budget_gb=d.get("memory_budget_gb", 4.0),
                      cache_dir=d.get("cache_dir"), progress=progress)


def load_frame_folder(root: str | Path, split: str, image_size: tuple[int, int], channels: int,
                      labels: str | Path | None = None, mask_size: int = 64):
    """Read one split of a dataset in the standard layout into memory, resized to ``image_size``.

    For ``testing``, frame labels come from ``labels`` if given, else a ``.mat``/``.npy``
    in ``root``, else the masks folder; masks are loaded when present. See
    :func:`memad.data.layout.standard_split` for the layout.
    """
    return load_split(standard_split(root, split, labels), image_size, channels, mask_size=mask_size,
                      in_memory=True)
