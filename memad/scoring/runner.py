"""Scoring test videos: every test clip through the network, its per-frame signals gathered.

Per scored frame: ``mse`` and ``psnr`` of the output against the target (frames in [0, 1]),
``contrast`` (how much the worst region's error exceeds the frame's, :func:`memad.scoring.step.local_contrast`),
the signals the memory and decoder report (``distance``...), and a per-pixel error map
(:func:`memad.scoring.step.step_signals`, the step streaming and export share); the scorer
combines the signals (:class:`memad.interfaces.FrameStats`). A memory written at test time
runs its own protocol after every pass (:meth:`memad.Memory.test_write`; MNAD gates the
write by how well the frame was predicted). ``test.mode``:

- ``sequential``: one frame per forward pass; each read sees the memory as the frames
  before it left it (the paper's semantics).
- ``batched``: ``test.chunk`` frames per pass; the memory is written once per chunk.

The trained memory is restored after scoring: evaluation never changes the model.
Each video's error maps go, as soon as it is scored, to a :class:`memad.scoring.maps.MapSink`
(the streamed pixel AUROC and RBDC/TBDC, and the few maps kept for plots), so memory does not
grow with the number of test frames. Metrics live in :mod:`memad.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import distributed, runtime
from ..config import image_hw
from ..data import VideoSet, iter_videos, open_split
from ..data.clips import check_clip_length
from ..errors import DataError, NumericalError
from ..frames import FloatRange, as_video, to_float
from ..interfaces import FrameStats, Scorer
from ..network import Network
from .baseline import align, inputs_aligned, relative_scores
from .maps import TOP_MAPS, MapSink, check_keep
from .scores import Scores
from .step import TorchModel, default_map_hw, step_signals, trained_state, writes_at_test

__all__ = ["Scores", "score_videos", "score_frames", "VideoScorer", "SignalRun", "video_signals", "frame_stats",
           "default_map_hw", "apply_scorer", "MapSink", "TOP_MAPS"]


class VideoScorer:
    """Runs one video at a time through the network in the configured mode, with the memory's
    test-time writes. Returns per-frame tensors: every signal, and ``map`` when asked.

    Creating one moves the network to ``device`` in the scoring layout (``test.channels_last``)."""

    def __init__(self, network: Network, device: torch.device, map_hw: tuple[int, int] | None):
        self.net = network
        self.device = device
        tc = network.config["test"]
        self.writes = writes_at_test(network)
        self.sequential = tc["mode"] == "sequential" and self.writes
        self.chunk = 1 if self.sequential else tc["chunk"]
        self.amp = runtime.scoring_amp(tc, device)
        self.map_hw = map_hw
        self.channels_last = runtime.scoring_channels_last(tc, device)
        runtime.prepare_model(network, network.config["train"], device,
                              compiled=(network.encoder, network.decoder), channels_last=self.channels_last)
        self.trained = trained_state(network)  # where test.anchor pulls the memory back to

    def __call__(self, frames: Tensor) -> dict[str, Tensor]:
        clip = self.net.clip_length
        n = frames.shape[0] - clip + 1
        # One buffer per output, filled in place: lists of per-frame tensors would cost ~2 KiB of
        # tensor bookkeeping per frame in sequential mode, more than the outputs themselves.
        outs: dict[str, Tensor] = {}
        steps = torch.arange(clip, device=frames.device)
        for s in range(0, max(n, 0), self.chunk):
            starts = torch.arange(s, min(s + self.chunk, n), device=frames.device)
            clips = to_float(frames[starts[:, None] + steps].to(self.device, non_blocking=True))
            step = step_signals(self.net, clips, amp=self.amp, channels_last=self.channels_last, map_hw=self.map_hw,
                                write=self.writes, trained=self.trained)
            for key, value in step.items():
                value = value.half() if key == "map" else value  # maps are many: half the memory
                if key not in outs:
                    outs[key] = value.new_empty((n, *value.shape[1:]))
                outs[key][s:s + value.shape[0]] = value
        return {k: v.cpu() for k, v in outs.items()}


@dataclass
class SignalRun:
    """The raw outputs of scoring a split: per scored frame its signals (and ``map``), the frame's index
    in the split, the signals as :class:`FrameStats`, and the model's wall time."""

    raw: dict[str, Tensor]
    frame: np.ndarray
    stats: FrameStats
    seconds: float


def video_signals(network: Network, videos: VideoSet, *, only: list[int] | None = None,
                  map_hw: tuple[int, int] | None = None, sink: MapSink | None = None) -> SignalRun:
    """Every clip of ``videos`` (or of the videos ``only`` names) through ``network``, in order; the
    memory as trained is restored afterwards (``test.reset``: per video, or carried over). With
    ``map_hw``, each video's error maps go to ``sink`` (then not kept in ``raw``), else into ``raw``."""
    videos.check_shape(network.config["data"]["channels"], image_hw(network.config))
    device = distributed.setup(network.config["train"]["device"])  # under torchrun: joins the group
    was_training = network.training
    network.eval()
    try:
        raw, frame_idx, seconds = _run(network, videos, device, map_hw, only, sink)
    finally:
        network.train(was_training)
    stats = frame_stats(raw, videos.video_index[frame_idx])
    for name in stats.signals:  # in the step's order: mse, the root of any other non-finite signal, first
        _check_finite(name, stats[name], stats, videos, frame_idx, "the model's output is not finite")
    return SignalRun(raw, frame_idx, stats, seconds)


def _run(network: Network, videos: VideoSet, device: torch.device, map_hw, only: list[int] | None = None,
         sink: MapSink | None = None) -> tuple[dict[str, Tensor], np.ndarray, float]:
    runner = VideoScorer(network, device, map_hw)
    trained = runner.trained  # the memory as trained: restored per video (test.reset) and at the end
    clip = network.clip_length
    check_clip_length(videos, clip)
    # Under torchrun each rank scores whole videos (a video's sequential memory writes stay on one rank).
    chosen = range(len(videos.lengths)) if only is None else only
    mine = sorted(i for i in distributed.split_videos(videos.lengths)[distributed.rank()] if i in chosen)
    if videos.on_disk:  # streamed from the frame cache one video at a time, the next read while this one is scored
        feed = iter_videos(videos, mine, device)
    else:  # a split held in memory goes to the GPU at once
        frames = videos.frames.to(device) if device.type == "cuda" else videos.frames
        feed = ((i, frames[videos.offsets[i]:videos.offsets[i] + videos.lengths[i]]) for i in mine)
    results, frame_idx = [], []
    reset = distributed.effective_reset(network.config["test"]["reset"], runner.writes)
    # Maps go to the sink video by video; under torchrun they are gathered first (the sink sees every video).
    streamed = sink is not None and not distributed.is_distributed()
    position, model_seconds = 0, 0.0
    runtime.synchronize(device)
    t0 = time.perf_counter()
    try:
        for i, video in feed:
            if reset == "video" and i > 0:
                network.memory.load_state_dict(trained)
            out = runner(video)
            idx = int(videos.offsets[i]) + network.score_offset + np.arange(videos.lengths[i] - clip + 1)
            if streamed and "map" in out:
                model_seconds += time.perf_counter() - t0  # the sink's work is not the model's time
                sink.add(i, idx, position, out.pop("map"), out)
                t0 = time.perf_counter()
            results.append(out)
            frame_idx.append(idx)
            position += len(idx)
        runtime.synchronize(device)
        seconds = model_seconds + time.perf_counter() - t0
    finally:
        network.memory.load_state_dict(trained)
    merged = {k: torch.cat([r[k] for r in results]) for k in results[0]} if results else {}
    scored = np.concatenate(frame_idx) if frame_idx else np.zeros(0, dtype=np.int64)
    merged, scored, seconds = distributed.gather_video_results(merged, scored, seconds)  # every rank: all videos
    if not len(scored):
        raise DataError(f"{videos.source}: no test video has the {clip} frames a sample needs")
    if sink is not None and not streamed and "map" in merged:
        _feed_gathered(sink, merged, scored, videos)
    return merged, scored, seconds


def _feed_gathered(sink: MapSink, merged: dict[str, Tensor], scored: np.ndarray, videos: VideoSet) -> None:
    """Gathered results (every rank's videos, in frame order) to ``sink`` video by video; the maps dropped."""
    maps = merged.pop("map")
    video = videos.video_index[scored]
    for v in dict.fromkeys(video.tolist()):
        sel = np.flatnonzero(video == v)
        sink.add(int(v), scored[sel], int(sel[0]), maps[sel], {k: t[sel] for k, t in merged.items()})


def frame_stats(raw: dict[str, Tensor], video: np.ndarray) -> FrameStats:
    """The per-frame signals of a scoring pass (everything but the maps) as :class:`FrameStats`."""
    return FrameStats(video, {k: v.double().numpy() for k, v in raw.items() if k != "map"})


def score_videos(model: TorchModel, data: Any, labels: str | Path | None = None, *,
                 only: list[int] | None = None, keep_maps: int | str = TOP_MAPS, keep_lowest: int = 0,
                 keep_frames: Collection[int] = ()) -> Scores:
    """Score the ``testing`` split of ``data`` (see :class:`Scores`); ``only``: just these videos (indices).

    The error maps are streamed into the pixel metrics (:mod:`memad.scoring.maps`); those of the
    ``keep_maps`` highest- and ``keep_lowest`` lowest-scoring frames are kept (``keep_maps="all"``: every one),
    and those of the split frames ``keep_frames`` (indices into the split's frames).
    """
    check_keep(keep_maps, keep_lowest)
    cfg = model.config
    videos = open_split(data, "testing", cfg, labels=labels)
    map_hw = tuple(videos.masks.shape[1:]) if videos.masks is not None else default_map_hw(cfg)
    sink = MapSink(videos.masks, model.scorer, keep_top=keep_maps, keep_lowest=keep_lowest, keep_frames=keep_frames,
                   regions=not videos.independent_frames)
    run = video_signals(model.network, videos, only=only, map_hw=map_hw, sink=sink)
    kept = sink.result()
    frame_idx, stats = run.frame, run.stats
    scores = apply_scorer(model.scorer, cfg["scorer"]["name"], stats, videos, frame_idx)
    calibrated = None
    if model.calibration_ is not None:
        calibrated = relative_scores(
            apply_scorer(model.scorer, cfg["scorer"]["name"],
                         inputs_aligned(align(stats, model.calibration_), model.calibration_)
                         .with_calibration(model.calibration_["signals"]),
                         videos, frame_idx),
            stats.video, model.calibration_)  # test.relative, confirm: each video's floor, the next frames
    return Scores(
        scores=scores, frame=frame_idx, video=stats.video,
        labels=None if videos.labels is None else videos.labels[frame_idx].astype(np.int8),
        stats=stats, maps=kept.maps, masks=kept.masks, map_frames=kept.frames, pixel=kept.metrics,
        video_names=list(videos.names), seconds=run.seconds, mode=cfg["test"]["mode"],
        extra=_image_extra(videos, frame_idx), calibrated=calibrated, scenes=videos.scenes,
    )


def apply_scorer(scorer: Scorer, name: str, stats: FrameStats, videos: VideoSet, frame_idx: np.ndarray) -> np.ndarray:
    """``scorer``'s anomaly scores of ``stats``, checked: the signals it requires, and finite scores."""
    missing = [s for s in scorer.requires if s not in stats]
    if missing:
        raise DataError(f"scorer {name!r} needs the per-frame signal(s) {', '.join(missing)}, but this model "
                        f"reports {', '.join(stats.names)}")
    scores = np.asarray(scorer(stats), dtype=np.float64)
    _check_finite("anomaly score", scores, stats, videos, frame_idx, f"scorer {name!r} returned it")
    return scores


def _image_extra(videos: VideoSet, frame_idx: np.ndarray) -> dict[str, Any]:
    """Each scored frame's file and (for image sets) category, for per-image and per-defect reports."""
    out: dict[str, Any] = {}
    if videos.frame_files:
        out["files"] = [videos.frame_files[i] for i in frame_idx]
    categories = getattr(videos, "categories", None)
    if categories:
        out["categories"] = np.asarray(categories, dtype=object)[frame_idx]
    return out


def _check_finite(name: str, arr: np.ndarray, stats: FrameStats, videos: VideoSet, frame_idx: np.ndarray,
                  why: str) -> None:
    """Stop at the first NaN/inf of a per-frame array, naming its video and frame (0-based in the video)."""
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        v = int(stats.video[i])
        local = int(frame_idx[i] - videos.offsets[v])
        where = f", {videos.frame_files[frame_idx[i]]}" if videos.frame_files else ""
        raise NumericalError(f"{videos.source}: {name} is {arr[i]} at video {videos.names[v]!r} frame {local}{where} "
                             f"({int(bad.sum())} frames in all); {why}")


def score_frames(model: TorchModel, frames: Any, *, float_range: FloatRange = (0.0, 1.0)) -> np.ndarray:
    """Scores of one video given as frames (any kind :func:`memad.frames.as_video` takes); frames no clip
    scores (the first ``clip_length - 1`` with ``test.score_frame: last``) are NaN. Calibrated scores
    when the model is calibrated."""
    cfg = model.config
    video = as_video(frames, cfg["data"]["channels"], image_hw(cfg), source="video", float_range=float_range)
    result = score_videos(model, VideoSet(video.contiguous(), ["video"], [video.shape[0]], source="frames"),
                          keep_maps=0)
    out = np.full(video.shape[0], np.nan)
    out[result.frame] = result.decision
    return out
