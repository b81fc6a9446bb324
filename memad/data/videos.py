"""A split of videos as one uint8 tensor, with clip indexing.

Frames are decoded and resized once, kept as ``uint8`` ``(N, C, H, W)``: in memory (on the
GPU when training there), or backed by the on-disk frame cache (:mod:`memad.data.cache`)
for splits larger than ``data.memory_budget_gb``. They are turned into float batches in
[-1, 1] only when a batch is drawn (:func:`memad.frames.to_float`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

if TYPE_CHECKING:
    from .cache import FrameStore


@dataclass
class VideoSet:
    """The frames of one split (``training`` or ``testing``) of a dataset.

    Attributes:
        frames: ``(N, C, H, W)`` uint8, all videos concatenated in order.
        names: one name per video.
        lengths: frames per video.
        labels: ``(N,)`` int 0/1 per frame (1 = anomalous), or None (training data).
        masks: ``(N, h, w)`` bool pixel masks, or None.
        source: where the data came from, for messages.
        frame_files: per frame, the image file it was read from (frame folders only).
        fps: per video, the frames per second its file declares (video files only; NaN
            when a file declares none), or None.
        video_paths: per video, the file or folder it was read from, for messages.
        store: for a split backed by the frame cache, the file its frames are read from
            (``frames`` is then a memory map of it); None when the frames are in memory.
        scenes: per video, the scene (camera view) it was filmed in, for a dataset of several
            scenes (ShanghaiTech: the part of the video's name before ``_``); None when the
            dataset declares none. ``memad eval`` then reports the frame AUROC per scene.
    """

    frames: Tensor
    names: list[str]
    lengths: list[int]
    labels: np.ndarray | None = None
    masks: Tensor | None = None
    source: str = ""
    frame_files: list[str] = field(default_factory=list)
    # Keyword-only, so that positional construction (and subclasses' fields) stay as they were.
    fps: list[float] | None = field(default=None, kw_only=True)
    video_paths: list[str] | None = field(default=None, kw_only=True)
    store: "FrameStore | None" = field(default=None, kw_only=True, repr=False, compare=False)
    scenes: list[str] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.frames.dtype != torch.uint8 or self.frames.dim() != 4:
            raise DataError(f"{self.source}: frames must be uint8 (N, C, H, W), got {self.frames.dtype} "
                            f"{tuple(self.frames.shape)}")
        if sum(self.lengths) != self.frames.shape[0] or len(self.lengths) != len(self.names):
            raise DataError(f"{self.source}: {len(self.names)} videos with {sum(self.lengths)} frames in all "
                            f"do not match the {self.frames.shape[0]} frames held")
        if self.labels is not None and len(self.labels) != self.frames.shape[0]:
            raise DataError(f"{self.source}: {len(self.labels)} labels for {self.frames.shape[0]} frames")
        if self.masks is not None and self.masks.shape[0] != self.frames.shape[0]:
            raise DataError(f"{self.source}: {self.masks.shape[0]} masks for {self.frames.shape[0]} frames")
        if self.scenes is not None and len(self.scenes) != len(self.names):
            raise DataError(f"{self.source}: {len(self.scenes)} scenes for {len(self.names)} videos; expected one "
                            "scene per video (or scenes=None)")

    @property
    def offsets(self) -> np.ndarray:
        """Index of each video's first frame in ``frames``."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    @property
    def video_index(self) -> np.ndarray:
        """``(N,)`` the video each frame belongs to."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @property
    def independent_frames(self) -> bool:
        """True when the frames are independent images (an image set), not consecutive frames of videos:
        nothing to average over time, no running floor, no regions of a scene (False here)."""
        return False

    @property
    def on_disk(self) -> bool:
        """True for a split backed by the on-disk frame cache (``frames`` then maps its file)."""
        return self.store is not None

    def fingerprint(self, i: int) -> str:
        """A short hash of video ``i``'s length and its first, middle and last frames: whether a video of
        the same name in other data is the same video (the held-out videos a calibration looks for).

        >>> v = VideoSet(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), ["a", "b"], [3, 3])
        >>> v.fingerprint(0) == v.fingerprint(1), len(v.fingerprint(0))
        (True, 16)
        """
        off, n = int(self.offsets[i]), self.lengths[i]
        digest = hashlib.sha1(str(n).encode())
        for k in sorted({off, off + n // 2, off + n - 1}):
            digest.update(np.ascontiguousarray(self.frames[k].cpu().numpy()).tobytes())
        return digest.hexdigest()[:16]

    def describe_video(self, i: int) -> str:
        """Video ``i`` for messages: its file or folder when known, else the split and its name."""
        if self.video_paths:
            return self.video_paths[i]
        return f"{self.source} video {self.names[i]!r}"

    @property
    def channels(self) -> int:
        return int(self.frames.shape[1])

    def check_shape(self, channels: int, size_hw: tuple[int, int]) -> None:
        """Refuse frames whose channels or size differ from the model's (folders and files are converted
        on load; a VideoSet given directly is not)."""
        if self.channels != channels:
            raise DataError(f"{self.source}: frames have {self.channels} channels, the config expects "
                            f"data.channels={channels}")
        hw = tuple(self.frames.shape[2:])
        if hw != tuple(size_hw):
            raise DataError(f"{self.source}: frames are {hw[0]}x{hw[1]} (height x width), the config expects "
                            f"data.image_size={list(size_hw)}")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def clip_starts(self, clip_length: int) -> np.ndarray:
        """Global start index of every clip of ``clip_length`` frames inside one video."""
        starts = [off + np.arange(max(n - clip_length + 1, 0)) for off, n in zip(self.offsets, self.lengths)]
        out = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        if out.size == 0:
            raise DataError(f"{self.source}: no video has {clip_length} frames (lengths: {self.lengths})")
        return out.astype(np.int64)

    def video(self, i: int) -> "VideoSet":
        """Video ``i`` alone, as a VideoSet sharing this one's storage."""
        off, n = int(self.offsets[i]), self.lengths[i]
        return VideoSet(
            frames=self.frames[off:off + n],
            names=[self.names[i]],
            lengths=[n],
            labels=None if self.labels is None else self.labels[off:off + n],
            masks=None if self.masks is None else self.masks[off:off + n],
            source=f"{self.source} video {self.names[i]}",
            frame_files=self.frame_files[off:off + n] if self.frame_files else [],
            fps=None if self.fps is None else [self.fps[i]],
            video_paths=None if self.video_paths is None else [self.video_paths[i]],
            store=None if self.store is None else self.store.view(off, n),
            scenes=None if self.scenes is None else [self.scenes[i]],
        )

    def to(self, device: torch.device | str) -> "VideoSet":
        """A copy with frames on ``device`` (a cache-backed split stays on disk for the CPU)."""
        stays = self.store is not None and torch.device(device).type == "cpu"
        return VideoSet(self.frames if stays else self.frames.to(device), self.names, self.lengths, self.labels,
                        self.masks, self.source, self.frame_files, fps=self.fps, video_paths=self.video_paths,
                        store=self.store if stays else None, scenes=self.scenes)


def gather_clips(frames: Tensor, starts: Tensor, clip_length: int) -> Tensor:
    """``(B, clip_length, C, H, W)`` uint8 clips from global ``starts``."""
    idx = starts.to(frames.device)[:, None] + torch.arange(clip_length, device=frames.device)
    return frames[idx]
