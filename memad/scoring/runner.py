"""Scoring test videos: every test clip through the detector, its per-frame signals gathered.

Per scored frame: ``mse`` and ``psnr`` of the output against the target (frames in [0, 1]),
the signals the memory and decoder report (``distance``...), and a per-pixel error map;
the scorer combines the signals (:class:`memad.interfaces.FrameStats`). A memory written at
test time runs its own protocol after every pass (:meth:`memad.Memory.test_write`; MNAD
gates the write by how well the frame was predicted). ``test.mode``:

- ``sequential``: one frame per forward pass; each read sees the memory as the frames
  before it left it (the paper's semantics).
- ``batched``: ``test.chunk`` frames per pass; the memory is written once per chunk.

The trained memory is restored after scoring: evaluation never changes the detector.
Metrics live in :mod:`memad.metrics`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import distributed, runtime
from ..config import image_hw
from ..data import VideoSet, iter_videos, open_split, to_float
from ..data.clips import check_clip_length
from ..errors import DataError, NumericalError
from ..interfaces import FrameStats, to_unit_range
from ..metrics import category_metrics, frame_metrics, pixel_auroc, precision_recall_f1
from ..model.training import check_frames

__all__ = ["Scores", "score_videos", "score_frames_tensor", "VideoScorer", "frame_stats"]


@dataclass
class Scores:
    """Anomaly scores of every scored test frame, with what is needed for the metrics.

    Attributes:
        scores: ``(N,)`` the scorer's anomaly score per scored frame (higher = more anomalous),
            as configured (per-video min-max for the paper's presets).
        frame: ``(N,)`` index of each scored frame in the split (0-based, all videos).
        video: ``(N,)`` video index of each scored frame.
        labels: ``(N,)`` 0/1 ground truth, or None.
        stats: the per-frame signals the scorer used.
        maps: ``(N, h, w)`` per-pixel squared error, or None.
        masks: ``(N, h, w)`` ground-truth masks of the scored frames, or None.
        video_names: names of the test videos.
        seconds: wall time of scoring (model only, frames already decoded).
        calibrated: ``(N,)`` the same scorer on calibrated signals (None when not calibrated):
            a frame's score depends on that frame alone.
    """

    scores: np.ndarray
    frame: np.ndarray
    video: np.ndarray
    labels: np.ndarray | None
    stats: FrameStats
    maps: Tensor | None
    masks: Tensor | None
    video_names: list[str]
    seconds: float
    mode: str = "sequential"
    extra: dict[str, Any] = field(default_factory=dict)
    calibrated: np.ndarray | None = None

    @property
    def decision(self) -> np.ndarray:
        """The scores a threshold applies to: the calibrated ones when there are, else the scorer's own."""
        return self.calibrated if self.calibrated is not None else self.scores

    @property
    def fps(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else float("nan")

    def metrics(self, threshold: float | None = None) -> dict[str, Any]:
        """``frame_auroc``, ``frame_auroc_macro``, ``aupr``, ``eer``, ``pixel_auroc``, ``fps``, counts.

        With calibrated scores also ``calibrated_frame_auroc`` and, given the calibrated
        ``threshold``, precision, recall, F1 and the false-alarm rate on normal frames at it.
        """
        if self.labels is None:
            raise DataError("no ground-truth labels for these test frames: pass a label file (--labels)")
        out = frame_metrics(self.scores, self.labels, self.video)
        out["pixel_auroc"] = pixel_auroc(self.maps, self.masks)
        out["fps"] = self.fps
        out["frames"] = int(len(self.scores))
        out["anomalous_frames"] = int(self.labels.sum())
        out["mode"] = self.mode
        if self.calibrated is not None:
            cal = frame_metrics(self.calibrated, self.labels, self.video)
            out["calibrated_frame_auroc"] = cal["frame_auroc"]
            if threshold is not None:
                at = precision_recall_f1(self.labels, (self.calibrated >= threshold).astype(np.int8))
                out.update(threshold=float(threshold), **at)
        if "categories" in self.extra:  # image sets: AUROC per defect type
            out["per_category"] = category_metrics(self.scores, self.labels, self.extra["categories"])
        return out


class VideoScorer:
    """Runs one video at a time through the model in the configured mode, with the memory's
    test-time writes. Returns per-frame tensors: every signal, and ``map`` when asked.

    Creating one moves the model to ``device`` in the scoring layout (``test.channels_last``)."""

    def __init__(self, detector, device: torch.device, map_hw: tuple[int, int] | None):
        self.det = detector
        self.device = device
        tc = detector.config["test"]
        self.writes = tc["update"] and detector.memory.writes
        self.sequential = tc["mode"] == "sequential" and self.writes
        self.chunk = 1 if self.sequential else tc["chunk"]
        self.amp = runtime.scoring_amp(tc, device)
        self.map_hw = map_hw
        self.channels_last = runtime.scoring_channels_last(tc, device)
        runtime.prepare_model(detector, detector.config["train"], device,
                              compiled=(detector.encoder, detector.decoder), channels_last=self.channels_last)

    @torch.no_grad()
    def step(self, clips: Tensor) -> dict[str, Tensor]:
        """Float clips ``(B, L, C, H, W)`` in [-1, 1] -> per-sample signals (and maps), memory written."""
        det = self.det
        x, y = det.split_clip(clips)
        with runtime.autocast(self.device, self.amp):
            out = det(runtime.to_model_layout(x, self.channels_last))
        pred = out.output.float()
        err = (to_unit_range(pred) - to_unit_range(y)).pow(2)
        result = {"mse": err.flatten(1).mean(1), **{k: v.float() for k, v in out.signals.items()},
                  **{k: v.float() for k, v in det.decoder.target_signals(pred, y).items()}}
        if self.map_hw is not None:
            result["map"] = F.adaptive_avg_pool2d(err.mean(1, keepdim=True), self.map_hw)[:, 0].half()
        if self.writes:
            det.memory.test_write(out.memory, pred, y)
        return result

    def __call__(self, frames: Tensor) -> dict[str, Tensor]:
        clip = self.det.clip_length
        n = frames.shape[0] - clip + 1
        # One buffer per output, filled in place: lists of per-frame tensors would cost ~2 KiB of
        # tensor bookkeeping per frame in sequential mode, more than the outputs themselves.
        outs: dict[str, Tensor] = {}
        steps = torch.arange(clip, device=frames.device)
        for s in range(0, max(n, 0), self.chunk):
            starts = torch.arange(s, min(s + self.chunk, n), device=frames.device)
            clips = to_float(frames[starts[:, None] + steps].to(self.device, non_blocking=True))
            for key, value in self.step(clips).items():
                if key not in outs:
                    outs[key] = value.new_empty((n, *value.shape[1:]))
                outs[key][s:s + value.shape[0]] = value
        return {k: v.cpu() for k, v in outs.items()}


def _run(detector, videos: VideoSet, device: torch.device, map_hw, only: list[int] | None = None
         ) -> tuple[dict[str, Tensor], np.ndarray, float]:
    runner = VideoScorer(detector, device, map_hw)
    trained = copy.deepcopy(detector.memory.state_dict())
    clip = detector.clip_length
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
    reset = distributed.effective_reset(detector.config["test"]["reset"], runner.writes)
    runtime.synchronize(device)
    t0 = time.perf_counter()
    try:
        for i, video in feed:
            if reset == "video" and i > 0:
                detector.memory.load_state_dict(trained)
            results.append(runner(video))
            frame_idx.append(int(videos.offsets[i]) + detector.score_offset + np.arange(videos.lengths[i] - clip + 1))
        runtime.synchronize(device)
        seconds = time.perf_counter() - t0
    finally:
        detector.memory.load_state_dict(trained)
    merged = {k: torch.cat([r[k] for r in results]) for k in results[0]} if results else {}
    scored = np.concatenate(frame_idx) if frame_idx else np.zeros(0, dtype=np.int64)
    merged, scored, seconds = distributed.gather_video_results(merged, scored, seconds)  # every rank: all videos
    if not len(scored):
        raise DataError(f"{videos.source}: no test video has the {clip} frames a sample needs")
    return merged, scored, seconds


def default_map_hw(config) -> tuple[int, int]:
    """The error-map size kept per frame: the frame scaled to at most ``data.pixel_eval_size`` a side."""
    h, w = image_hw(config)
    limit = config["data"]["pixel_eval_size"]
    scale = min(1.0, limit / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def frame_stats(raw: dict[str, Tensor], video: np.ndarray) -> FrameStats:
    """The per-frame signals of a scoring pass (everything but the maps) as :class:`FrameStats`."""
    return FrameStats(video, {k: v.double().numpy() for k, v in raw.items() if k != "map"})


def score_videos(detector, data: Any, labels: str | Path | None = None, *, only: list[int] | None = None) -> Scores:
    """Score the ``testing`` split of ``data`` (see :class:`Scores`); ``only``: just these videos (indices)."""
    cfg = detector.config
    videos = open_split(data, "testing", cfg, labels=labels)
    check_frames(detector, videos)
    device = distributed.setup(cfg["train"]["device"])  # under torchrun: joins the process group, cuda:LOCAL_RANK
    was_training = detector.training
    detector.eval()
    map_hw = tuple(videos.masks.shape[1:]) if videos.masks is not None else default_map_hw(cfg)
    try:
        raw, frame_idx, seconds = _run(detector, videos, device, map_hw, only)
    finally:
        detector.train(was_training)
    stats = frame_stats(raw, videos.video_index[frame_idx])
    for name in stats.names:
        _check_finite(name, stats[name], stats, videos, frame_idx, "the model's output is not finite")
    scores = _apply_scorer(detector, stats, videos, frame_idx)
    calibrated = None
    if detector.calibration_ is not None:
        calibrated = _apply_scorer(detector, stats.with_calibration(detector.calibration_["signals"]), videos,
                                   frame_idx)
    return Scores(
        scores=scores, frame=frame_idx, video=stats.video,
        labels=None if videos.labels is None else videos.labels[frame_idx].astype(np.int8),
        stats=stats, maps=raw.get("map"),
        masks=None if videos.masks is None else videos.masks[torch.from_numpy(frame_idx)],
        video_names=list(videos.names), seconds=seconds, mode=cfg["test"]["mode"],
        extra=_image_extra(videos, frame_idx), calibrated=calibrated,
    )


def _apply_scorer(detector, stats: FrameStats, videos: VideoSet, frame_idx: np.ndarray) -> np.ndarray:
    name = detector.config["scorer"]["name"]
    missing = [s for s in detector.scorer.requires if s not in stats]
    if missing:
        raise DataError(f"scorer {name!r} needs the per-frame signal(s) {', '.join(missing)}, but this model "
                        f"reports {', '.join(stats.names)}")
    scores = np.asarray(detector.scorer(stats), dtype=np.float64)
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


def frames_as_uint8(frames: Tensor | np.ndarray, what: str = "frames") -> Tensor:
    """Frames given as uint8, or as floats in [-1, 1], as uint8 (the same values the loaders produce)."""
    frames = torch.as_tensor(frames)
    if frames.dtype == torch.uint8:
        return frames
    # Clamping would hide both: NaN turns into an arbitrary byte, and 0..255 floats into white frames.
    values = frames.float()
    bad = ~torch.isfinite(values)
    if bad.any():
        first = int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0]) if bad.dim() > 1 else 0
        raise DataError(f"{what}: {int(bad.sum())} values are NaN or infinite (first in frame {first})")
    lo, hi = float(values.min()), float(values.max())
    if lo < -1.001 or hi > 1.001:
        raise DataError(f"{what}: float frames must lie in [-1, 1], got values from {lo:g} to {hi:g} "
                        f"(pass uint8 for 0..255)")
    return ((values.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def score_frames_tensor(detector, frames: Tensor | np.ndarray) -> np.ndarray:
    """Scores of one video ``(T, C, H, W)``; frames no clip scores (the first ``clip_length - 1`` with
    ``test.score_frame: last``) are NaN.
    Calibrated scores when the detector is calibrated."""
    frames = frames_as_uint8(frames)
    if frames.dim() != 4:
        raise DataError(f"frames: expected (T, C, H, W), got shape {tuple(frames.shape)}")
    video = VideoSet(frames.contiguous(), ["video"], [frames.shape[0]], source="frames")
    result = score_videos(detector, video)
    out = np.full(frames.shape[0], np.nan)
    out[result.frame] = result.decision
    return out
