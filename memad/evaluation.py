"""Scoring test videos and the metrics of the paper (and a few more).

Per scored frame: PSNR of the output against the target (frames in [0, 1]), the
memory's feature distance, and a per-pixel error map; the scorer combines them (the
paper: min-max per video, weighted). Memories that write at test time do it through
the gate of eq. 6-7: a frame's queries enter only when its weighted regular score is
below ``test.gate``. ``test.mode``:

- ``sequential``: one frame per forward pass; each read sees the memory as the frames
  before it left it (the paper's semantics).
- ``batched``: ``test.chunk`` frames per pass; the memory is written once per chunk
  with the chunk's gated frames.

The trained memory is restored after scoring: evaluation never changes the detector.
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
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import Tensor

from . import distributed
from .data import VideoSet, open_split, to_float
from .errors import DataError, NumericalError
from .interfaces import FrameStats, psnr_from_mse, to_unit_range
from .training import autocast, check_channels, pick_device, prepare_model, to_model_layout, uses_channels_last


def regular_score(output: Tensor, target: Tensor) -> Tensor:
    """Eq. 6-7 per sample: ``sum(W e) / sum(W)``, ``e`` the squared error in [0, 1], ``W = 1 - exp(-e)``."""
    e = (to_unit_range(output.float()) - to_unit_range(target.float())).pow(2).flatten(1)
    w = 1 - torch.exp(-e)
    return (w * e).sum(1) / w.sum(1).clamp_min(1e-12)


@dataclass
class Scores:
    """Anomaly scores of every scored test frame, with what is needed for the metrics.

    Attributes:
        scores: ``(N,)`` anomaly score per scored frame (higher = more anomalous).
        frame: ``(N,)`` index of each scored frame in the split (0-based, all videos).
        video: ``(N,)`` video index of each scored frame.
        labels: ``(N,)`` 0/1 ground truth, or None.
        stats: the raw per-frame statistics the scorer used.
        maps: ``(N, h, w)`` per-pixel squared error, or None.
        masks: ``(N, h, w)`` ground-truth masks of the scored frames, or None.
        video_names: names of the test videos.
        seconds: wall time of scoring (model only, frames already in memory).
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

    @property
    def fps(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else float("nan")

    def metrics(self) -> dict[str, Any]:
        """``frame_auroc``, ``frame_auroc_macro``, ``aupr``, ``eer``, ``pixel_auroc``, ``fps``, counts."""
        if self.labels is None:
            raise DataError("no ground-truth labels for these test frames: pass a label file (--labels)")
        out = frame_metrics(self.scores, self.labels, self.video)
        out["pixel_auroc"] = pixel_auroc(self.maps, self.masks)
        out["fps"] = self.fps
        out["frames"] = int(len(self.scores))
        out["anomalous_frames"] = int(self.labels.sum())
        out["mode"] = self.mode
        if "categories" in self.extra:  # image sets: AUROC per defect type (see memad.images)
            from .images import category_metrics

            out["per_category"] = category_metrics(self.scores, self.labels, self.extra["categories"])
        return out


def _eer(labels: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def frame_metrics(scores: np.ndarray, labels: np.ndarray, video: np.ndarray) -> dict[str, Any]:
    """Pooled AUROC over all frames, mean per-video AUROC (videos with both classes), AUPR, EER.

    >>> m = frame_metrics(np.array([.1, .9, .2, .8]), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    >>> m["frame_auroc"], m["frame_auroc_macro"], m["eer"]
    (1.0, 1.0, 0.0)
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise NumericalError(f"{int(bad.sum())} anomaly scores are NaN or infinite (first at scored frame "
                             f"{int(np.argmax(bad))}); the metrics would be meaningless")
    if len(np.unique(labels)) < 2:
        return {"frame_auroc": None, "frame_auroc_macro": None, "aupr": None, "eer": None}
    per_video = [roc_auc_score(labels[video == v], scores[video == v]) for v in np.unique(video)
                 if len(np.unique(labels[video == v])) == 2]
    return {
        "frame_auroc": float(roc_auc_score(labels, scores)),
        "frame_auroc_macro": float(np.mean(per_video)) if per_video else None,
        "aupr": float(average_precision_score(labels, scores)),
        "eer": _eer(labels, scores),
    }


def pixel_auroc(maps: Tensor | None, masks: Tensor | None) -> float | None:
    """AUROC of per-pixel errors against the masks (None without masks or with one class)."""
    if maps is None or masks is None:
        return None
    y = masks.reshape(-1).numpy().astype(np.int8)
    if y.min() == y.max():
        return None
    s = maps.reshape(-1).float().numpy()
    return float(roc_auc_score(y, s))


class _VideoScorer:
    """Runs one video through the model in the configured mode, gating memory writes."""

    def __init__(self, detector, device: torch.device, map_hw: tuple[int, int] | None):
        self.det = detector
        self.device = device
        tc = detector.config["test"]
        self.writes = tc["update"] and detector.memory.writes_at_test_time
        self.gate = tc["gate"]
        self.sequential = tc["mode"] == "sequential" and self.writes
        self.chunk = 1 if self.sequential else tc["chunk"]
        self.amp = detector.config["train"]["amp"]
        self.map_hw = map_hw
        self.channels_last = uses_channels_last(detector.config["train"], device)

    @torch.no_grad()
    def __call__(self, frames: Tensor) -> dict[str, Tensor]:
        det, clip = self.det, self.det.clip_length
        n = frames.shape[0] - clip + 1
        # One buffer per output, filled in place: lists of per-frame tensors would cost ~2 KiB of
        # tensor bookkeeping per frame in sequential mode, more than the outputs themselves.
        outs: dict[str, Tensor] = {}

        def put(key: str, value: Tensor, at: int) -> None:
            if key not in outs:
                outs[key] = value.new_empty((n, *value.shape[1:]))
            outs[key][at:at + value.shape[0]] = value

        steps = torch.arange(clip, device=frames.device)
        for s in range(0, max(n, 0), self.chunk):
            starts = torch.arange(s, min(s + self.chunk, n), device=frames.device)
            x, y = det.split_clip(to_float(frames[starts[:, None] + steps].to(self.device, non_blocking=True)))
            with autocast(self.device, self.amp):
                out = det(to_model_layout(x, self.channels_last), update=False)
            pred = out.output.float()
            err = (to_unit_range(pred) - to_unit_range(y)).pow(2)
            put("mse", err.flatten(1).mean(1), s)
            reg = regular_score(pred, y)
            put("regular", reg, s)
            if out.memory.distance is not None:
                put("distance", out.memory.distance.float(), s)
            if self.map_hw is not None:
                put("map", F.adaptive_avg_pool2d(err.mean(1, keepdim=True), self.map_hw)[:, 0].half(), s)
            if self.writes and out.memory.query is not None:
                keep = None if self.gate is None else reg < self.gate
                det.memory.write(out.memory.query, keep)
        return {k: v.cpu() for k, v in outs.items()}


def _run(detector, videos: VideoSet, device: torch.device) -> tuple[dict[str, Tensor], np.ndarray, float]:
    tc = detector.config["test"]
    map_hw = tuple(videos.masks.shape[1:]) if videos.masks is not None else _default_map_hw(detector)
    runner = _VideoScorer(detector, device, map_hw)
    trained = copy.deepcopy(detector.memory.state_dict())
    frames = videos.frames.to(device) if device.type == "cuda" else videos.frames
    clip = detector.clip_length
    results, frame_idx = [], []
    # Under torchrun each rank scores whole videos (a video's sequential memory writes stay on one rank).
    mine = set(distributed.split_videos(videos.lengths)[distributed.rank()])
    reset = distributed.effective_reset(tc["reset"], runner.writes)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    try:
        for i, (off, n) in enumerate(zip(videos.offsets, videos.lengths)):
            if i not in mine:
                continue
            if reset == "video" and i > 0:
                detector.memory.load_state_dict(trained)
            if n < clip:
                continue
            results.append(runner(frames[off:off + n]))
            frame_idx.append(off + np.arange(clip - 1, n))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    finally:
        detector.memory.load_state_dict(trained)
    merged = {k: torch.cat([r[k] for r in results]) for k in results[0]} if results else {}
    scored = np.concatenate(frame_idx) if frame_idx else np.zeros(0, dtype=np.int64)
    merged, scored, seconds = distributed.gather_video_results(merged, scored, seconds)  # every rank: all videos
    if not len(scored):
        raise DataError(f"{videos.source}: no test video has the {clip} frames a sample needs")
    return merged, scored, seconds


def _default_map_hw(detector) -> tuple[int, int]:
    from .config import image_hw

    h, w = image_hw(detector.config)
    limit = detector.config["data"]["pixel_eval_size"]
    scale = min(1.0, limit / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def score_videos(detector, data: Any, labels: str | Path | None = None) -> Scores:
    """Score the ``testing`` split of ``data`` (see :class:`Scores`)."""
    cfg = detector.config
    videos = open_split(data, "testing", cfg, labels=labels)
    check_channels(detector, videos)
    device = distributed.setup(cfg["train"]["device"])  # under torchrun: joins the process group, cuda:LOCAL_RANK
    was_training = detector.training
    prepare_model(detector, device)
    detector.eval()
    try:
        raw, frame_idx, seconds = _run(detector, videos, device)
    finally:
        detector.train(was_training)
    video = videos.video_index[frame_idx]
    mse = raw["mse"].double().numpy()
    stats = FrameStats(video=video, psnr=psnr_from_mse(mse), mse=mse,
                       distance=raw["distance"].double().numpy() if "distance" in raw else None,
                       extra={"regular": raw["regular"].double().numpy()})
    _check_stats(stats, videos, frame_idx)
    scores = np.asarray(detector.scorer(stats), dtype=np.float64)
    _check_finite("anomaly score", scores, stats, videos, frame_idx, f"scorer {cfg['scorer']['name']!r} returned it")
    return Scores(
        scores=scores, frame=frame_idx, video=video,
        labels=None if videos.labels is None else videos.labels[frame_idx].astype(np.int8),
        stats=stats, maps=raw.get("map"),
        masks=None if videos.masks is None else videos.masks[torch.from_numpy(frame_idx)],
        video_names=list(videos.names), seconds=seconds, mode=cfg["test"]["mode"],
        extra=_image_extra(videos, frame_idx),
    )


def _image_extra(videos: VideoSet, frame_idx: np.ndarray) -> dict[str, Any]:
    """Each scored frame's file and (for image sets) category, for per-image and per-defect reports."""
    out: dict[str, Any] = {}
    if videos.frame_files:
        out["files"] = [videos.frame_files[i] for i in frame_idx]
    categories = getattr(videos, "categories", None)
    if categories:
        out["categories"] = np.asarray(categories, dtype=object)[frame_idx]
    return out


def _check_stats(stats: FrameStats, videos: VideoSet, frame_idx: np.ndarray) -> None:
    for name in ("mse", "distance"):
        arr = getattr(stats, name)
        if arr is None:
            continue
        _check_finite(name, arr, stats, videos, frame_idx, "the model's output is not finite")


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


def score_frames_tensor(detector, frames: Tensor | np.ndarray) -> np.ndarray:
    """Scores of one video ``(T, C, H, W)``; the first ``clip_length - 1`` frames are NaN."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8:
        # Clamping would hide both: NaN turns into an arbitrary byte, and 0..255 floats into white frames.
        values = frames.float()
        bad = ~torch.isfinite(values)
        if bad.any():
            first = int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0]) if bad.dim() > 1 else 0
            raise DataError(f"frames: {int(bad.sum())} values are NaN or infinite (first in frame {first})")
        lo, hi = float(values.min()), float(values.max())
        if lo < -1.001 or hi > 1.001:
            raise DataError(f"frames: float frames must lie in [-1, 1], got values from {lo:g} to {hi:g} "
                            f"(pass uint8 for 0..255)")
        frames = ((values.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if frames.dim() != 4:
        raise DataError(f"frames: expected (T, C, H, W), got shape {tuple(frames.shape)}")
    video = VideoSet(frames.contiguous(), ["video"], [frames.shape[0]], source="frames")
    result = score_videos(detector, video)
    out = np.full(frames.shape[0], np.nan)
    out[result.frame] = result.scores
    return out
