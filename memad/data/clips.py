"""Training clips, drawn in the same order on every run and shared out over processes; test videos one by one.

:class:`ClipBatches` yields, per epoch, uint8 clip batches ``(B, L, C, H, W)`` on the
training device. The epoch's order is a permutation derived from the seed and the epoch
(a resumed run draws the same one); under torchrun each rank takes every ``world``-th clip
(:func:`memad.distributed.shard`), and step ``s`` takes that shard's ``s``-th batch.

Where the frames are decides how a batch is made, never which clips it holds:

- a split in memory is moved to the device once and clips are gathered there;
- a split backed by the frame cache (``VideoSet.on_disk``) is read by a torch
  ``DataLoader``: ``data.workers`` processes each read whole batches of this rank's clips
  from the cache file (one positional read per clip: a clip's frames are contiguous), into
  pinned memory on CUDA, a few batches ahead of the model.

For scoring, :func:`video_frames` gives one video's frames on the device and
:func:`iter_videos` streams videos one at a time, reading the next while the current one
is scored.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import distributed
from ..errors import DataError
from .videos import VideoSet, gather_clips

__all__ = ["ClipBatches", "epoch_order", "check_clip_length", "video_frames", "iter_videos", "holdout_videos"]


def holdout_videos(n: int, fraction: float) -> list[int]:
    """Indices of the videos held out of ``n``: ``round(fraction * n)`` (at least one when ``n >= 2``
    and ``fraction > 0``, never all), spread evenly over the split.

    >>> holdout_videos(8, 0.25), holdout_videos(1, 0.25), holdout_videos(3, 0.0)
    ([2, 6], [], [])
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout: expected a fraction in [0, 1), got {fraction!r}")
    if n < 2 or fraction == 0:
        return []
    k = min(n - 1, max(1, round(fraction * n)))
    step = n / k
    return sorted({int(step * (i + 0.5)) for i in range(k)})


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The order of ``n`` clips in ``epoch``: one generator per epoch, derived from the seed."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def check_clip_length(videos: VideoSet, clip_length: int) -> None:
    """Refuse a split with a video shorter than one clip: its frames would silently go unused."""
    short = [i for i, n in enumerate(videos.lengths) if n < clip_length]
    if short:
        i = short[0]
        more = f" ({len(short) - 1} more videos are too short)" if len(short) > 1 else ""
        raise DataError(f"{videos.describe_video(i)}: {videos.lengths[i]} frames, shorter than one clip; expected at "
                        f"least {clip_length} frames per video (data.frames and the task set the clip length){more}")


class _ClipReader(Dataset):
    """Item = a list of clip starts; value = those clips ``(B, L, C, H, W)`` read from the frame cache."""

    def __init__(self, videos: VideoSet, clip_length: int):
        self.store, self.clip_length = videos.store, clip_length

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, starts: list[int]) -> Tensor:
        return torch.from_numpy(np.stack([self.store.read(s, self.clip_length) for s in starts]))


class _EpochSampler(Sampler):
    """This rank's batches of clip starts for the epoch it is set to."""

    def __init__(self, batches: "ClipBatches"):
        # A weak reference: no cycle, so dropping the ClipBatches stops its workers at once.
        self.batches, self.epoch = weakref.proxy(batches), 0

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches.epoch_starts(self.epoch).tolist())

    def __len__(self) -> int:
        return self.batches.steps


class ClipBatches:
    """The training clips of ``videos`` in batches of ``batch_size``, ``steps`` batches per epoch.

    Frames in memory are moved to ``device`` once and clips gathered there: indexing with
    host tensors would copy them over, and a pageable host-to-device copy waits for the GPU
    at every step. Frames on disk are read by ``workers`` DataLoader processes (see the
    module docstring). ``rank`` and ``world`` default to this process's place under torchrun.
    ``only`` restricts the clips to those videos (indices; the others are held out).

    >>> from memad.data.synthetic import make_synthetic
    >>> batches = ClipBatches(make_synthetic("training", (16, 16), 1), 5, 4, seed=0, device=torch.device("cpu"))
    >>> batches.steps, next(iter(batches.epoch(0))).shape
    (112, torch.Size([4, 5, 1, 16, 16]))
    """

    def __init__(self, videos: VideoSet, clip_length: int, batch_size: int, *, seed: int,
                 device: torch.device, max_steps: int = 0, workers: int = 0, rank: int | None = None,
                 world: int | None = None, only: Iterable[int] | None = None):
        self.videos, self.clip_length, self.batch_size = videos, clip_length, batch_size
        self.seed, self.device, self.workers = seed, torch.device(device), workers
        self.rank = distributed.rank() if rank is None else rank
        self.world = distributed.world_size() if world is None else world
        check_clip_length(videos, clip_length)
        starts = videos.clip_starts(clip_length)
        if only is not None:
            starts = starts[np.isin(videos.video_index[starts], list(only))]
        self.starts = torch.from_numpy(starts)
        self.steps = distributed.shard_length(len(self.starts), self.world) // batch_size  # drop_last, as MNAD's loader
        if max_steps:
            self.steps = min(self.steps, max_steps)
        if self.steps == 0:
            raise DataError(f"{videos.source}: {len(self.starts)} training clips are fewer than "
                            f"train.batch_size={batch_size}" + (f" x {self.world} processes" if self.world > 1 else ""))
        self._frames: Tensor | None = None
        self._loader: DataLoader | None = None

    def order(self, epoch: int) -> Tensor:
        """This rank's clip indices for ``epoch`` (into :attr:`starts`)."""
        return distributed.shard(epoch_order(len(self.starts), self.seed, epoch), self.rank, self.world)

    def epoch_starts(self, epoch: int) -> Tensor:
        """``(steps, batch_size)``: the first frame (global index) of every clip this rank reads in ``epoch``."""
        bs = self.batch_size
        return self.starts[self.order(epoch)[:self.steps * bs]].view(self.steps, bs)

    def epoch(self, epoch: int) -> Iterator[Tensor]:
        """The ``steps`` batches of ``epoch``, uint8 on the device."""
        if self.videos.on_disk:
            yield from self._from_disk(epoch)
            return
        if self._frames is None:
            self._frames = self.videos.frames.to(self.device)
            self.starts = self.starts.to(self.device)
        order = self.order(epoch).to(self.device)
        bs = self.batch_size
        for step in range(self.steps):
            yield gather_clips(self._frames, self.starts[order[step * bs:(step + 1) * bs]], self.clip_length)

    def _from_disk(self, epoch: int) -> Iterator[Tensor]:
        if self._loader is None:
            workers = self.workers
            self._loader = DataLoader(
                _ClipReader(self.videos, self.clip_length), batch_size=None, sampler=_EpochSampler(self),
                num_workers=workers, pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                prefetch_factor=4 if workers else None)
        self._loader.sampler.epoch = epoch  # read by the main process when the epoch's iterator starts
        try:
            for clips in self._loader:
                yield clips.to(self.device, non_blocking=True)
        except DataError as exc:
            raise DataError(_worker_message(exc)) from None

    def close(self) -> None:
        """Stop the DataLoader workers now (they also stop when this object is dropped)."""
        self._loader = None

    def __len__(self) -> int:
        return self.steps


def video_frames(videos: VideoSet, i: int, device: torch.device | str = "cpu") -> Tensor:
    """Video ``i``'s frames ``(T, C, H, W)`` uint8 on ``device``: a view of a split in memory on it,
    else read from memory or the frame cache (only this video: memory stays one video's worth)."""
    device = torch.device(device)
    off, n = int(videos.offsets[i]), int(videos.lengths[i])
    if not videos.on_disk:
        return videos.frames[off:off + n].to(device, non_blocking=True)
    frames = torch.from_numpy(videos.store.read(off, n))
    if device.type == "cuda":
        frames = frames.pin_memory()
    return frames.to(device, non_blocking=True)


def iter_videos(videos: VideoSet, indices: Iterable[int] | None = None, device: torch.device | str = "cpu") \
        -> Iterator[tuple[int, Tensor]]:
    """``(i, frames)`` for each video ``i`` in ``indices`` (default: all), frames as :func:`video_frames`
    gives them; the next video is read in a background thread while the caller works on this one."""
    order = list(range(len(videos.lengths)) if indices is None else indices)
    if not order:
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(video_frames, videos, order[0], device)
        for k, i in enumerate(order):
            frames = pending.result()
            if k + 1 < len(order):
                pending = pool.submit(video_frames, videos, order[k + 1], device)
            yield i, frames


def _worker_message(exc: DataError) -> str:
    """A DataError raised in a DataLoader worker, as its own one line: the loader wraps it in "Caught
    DataError in DataLoader worker process 0" and the worker's whole traceback."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split("DataError: ", 1)[1] if "DataError: " in last else last
