"""Frame-by-frame scoring of a stream: a result as soon as each frame's clip is complete.

:func:`stream` keeps the last ``clip_length`` frames, runs each new clip through the detector
(the memory's test-time write applied online, as in the sequential test), and scores the
frame's signals with the detector's calibration, so that a frame's score depends on it
alone. Memory use is constant: nothing grows with the stream. On a finite video the scores
equal the offline calibrated scores of ``test.mode: sequential``.

When frames arrive faster than the model scores them (a live camera), ``policy`` says
what happens: ``block`` (the default) reads the next frame only when the model is ready, so
nothing is lost and the source waits (a file, or a camera buffering); ``drop`` reads the
source in a background thread that keeps only the newest frames, skipping the others and
counting them in each result (``dropped``).
"""

from __future__ import annotations

import collections
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .. import distributed
from ..config import image_hw
from ..data.folder import to_frame
from ..errors import ConfigError, DataError
from ..interfaces import FrameStats
from .calibration import require_calibration
from .runner import VideoScorer, default_map_hw, frames_as_uint8

__all__ = ["FrameResult", "stream", "prepare_frame"]

Policy = Literal["block", "drop"]


@dataclass
class FrameResult:
    """One scored frame of a stream.

    Attributes:
        index: the frame's position in the input (0-based, counting dropped frames too).
        score: its calibrated anomaly score.
        anomalous: ``score >= threshold``.
        threshold: the detector's calibrated threshold.
        signals: the per-frame signals the score was made from (``psnr``, ``distance``...).
        latency: seconds from the frame's arrival to its result.
        dropped: input frames skipped so far (``policy="drop"``; always 0 with ``block``).
        policy: what happens when input outruns the model (``block`` or ``drop``).
        error_map: the per-pixel squared error ``(h, w)`` (float32, at most ``data.pixel_eval_size``
            a side), or None when not asked for.
    """

    index: int
    score: float
    anomalous: bool
    threshold: float
    signals: dict[str, float]
    latency: float
    dropped: int = 0
    policy: str = "block"
    error_map: np.ndarray | None = field(default=None, repr=False)


def prepare_frame(frame: Any, config: dict[str, Any], *, warn: list[bool] | None = None) -> Tensor:
    """One frame (``H x W x C`` or ``H x W`` array, or ``C x H x W`` tensor; uint8 or float in [-1, 1]) as a
    uint8 ``(C, H, W)`` tensor of the config's size: another size is resized as the data loaders
    resize (Pillow, bilinear; with one warning per ``warn`` list), another channel count is an error."""
    want_c = config["data"]["channels"]
    hw = image_hw(config)
    if isinstance(frame, np.ndarray):
        arr = frame if frame.ndim == 3 else frame[:, :, None] if frame.ndim == 2 else None
        if arr is None:
            raise DataError(f"stream frame: expected an H x W x C or H x W array, got shape {frame.shape}")
        arr = arr if arr.flags.writeable else arr.copy()  # torch wants writable memory
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    else:
        t = torch.as_tensor(frame)
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise DataError(f"stream frame: expected a (C, H, W) tensor, got shape {tuple(t.shape)}")
    t = frames_as_uint8(t[None], what="stream frame")[0]
    if t.shape[0] != want_c:
        raise DataError(f"stream frame: {t.shape[0]} channels, the model expects data.channels={want_c}")
    if tuple(t.shape[1:]) != hw:
        if warn is not None and not warn[0]:
            warnings.warn(f"stream frames are {t.shape[1]}x{t.shape[2]} (height x width); resizing them to the "
                          f"model's {hw[0]}x{hw[1]} (data.image_size)", stacklevel=3)
            warn[0] = True
        hwc = t.permute(1, 2, 0).numpy()
        img = Image.fromarray(hwc[:, :, 0] if want_c == 1 else hwc, "L" if want_c == 1 else "RGB")
        t = torch.from_numpy(np.array(to_frame(img, hw, want_c)))  # a writable copy of what Pillow returns
    return t


class _LatestFrames:
    """Reads ``source`` in a thread, keeping the ``keep`` newest frames; older unread ones are dropped."""

    def __init__(self, source: Iterable[Any], keep: int):
        self._queue: collections.deque = collections.deque(maxlen=keep)
        self._ready = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self.dropped = 0
        self._thread = threading.Thread(target=self._read, args=(iter(source),), daemon=True)
        self._thread.start()

    def _read(self, it: Iterator[Any]) -> None:
        index = 0
        try:
            for frame in it:
                with self._ready:
                    if len(self._queue) == self._queue.maxlen:
                        self.dropped += 1
                    self._queue.append((index, frame, time.perf_counter()))
                    self._ready.notify()
                index += 1
        except BaseException as exc:  # handed to the consumer, which raises it
            self._error = exc
        finally:
            with self._ready:
                self._done = True
                self._ready.notify()

    def __iter__(self) -> Iterator[tuple[int, Any, float]]:
        while True:
            with self._ready:
                while not self._queue and not self._done:
                    self._ready.wait()
                if self._queue:
                    item = self._queue.popleft()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield item


def _timed(source: Iterable[Any]) -> Iterator[tuple[int, Any, float]]:
    for index, frame in enumerate(source):
        yield index, frame, time.perf_counter()


class TorchStep:
    """The per-frame step of a detector in PyTorch: one uint8 clip ``(1, L, C, H, W)`` -> its signals
    (and error map), with the memory's test-time write; :meth:`close` restores the memory."""

    def __init__(self, detector, device: torch.device, maps: bool):
        cfg = detector.config
        self.detector, self.device, self.was_training = detector, device, detector.training
        detector.eval()
        self.runner = VideoScorer(detector, device, default_map_hw(cfg) if maps else None)
        self.trained = {k: v.clone() for k, v in detector.memory.state_dict().items()}

    @torch.no_grad()
    def __call__(self, clip: Tensor) -> dict[str, Tensor]:
        return self.runner.step(clip.to(self.device).float().div_(127.5).sub_(1.0))

    def close(self) -> None:
        self.detector.memory.load_state_dict(self.trained)
        self.detector.train(self.was_training)


def stream(detector, frames: Iterable[Any], *, policy: Policy = "block", maps: bool = False,
           device: str | torch.device | None = None) -> Iterator[FrameResult]:
    """Yield a :class:`FrameResult` per frame of ``frames`` once its clip is complete (see the module docstring).

    The detector must be calibrated (:meth:`Detector.calibrate`). Its memory is written as
    the stream goes and restored when the generator is closed or exhausted. ``detector`` may
    also be an exported model (:func:`memad.scoring.export.load_exported`), which runs its own engine.

    >>> import memad, numpy as np  # doctest: +SKIP
    >>> det = memad.load("runs/pred/checkpoint.pt")  # doctest: +SKIP
    >>> for r in det.stream(frames):  # doctest: +SKIP
    ...     print(r.index, r.score, r.anomalous)
    """
    if policy not in ("block", "drop"):
        raise ConfigError(f"policy: expected 'block' or 'drop', got {policy!r}")
    cal = require_calibration(detector, "streamed scores")
    if hasattr(detector, "make_step"):  # an exported model brings its own engine
        step = detector.make_step(maps)
    else:
        dev = torch.device(device) if device is not None else distributed.setup(detector.config["train"]["device"])
        step = TorchStep(detector, dev, maps)
    threshold = float(detector.threshold_ if detector.threshold_ is not None else cal["threshold"])
    return _loop(detector, step, frames, cal["signals"], threshold, policy, maps)


def _loop(detector, step, frames: Iterable[Any], ranges, threshold: float, policy: str, maps: bool
          ) -> Iterator[FrameResult]:
    cfg, clip, offset = detector.config, detector.clip_length, detector.score_offset
    window: collections.deque = collections.deque(maxlen=clip)
    source = _LatestFrames(frames, keep=1) if policy == "drop" else None
    warned = [False]
    try:
        for index, frame, arrived in (source if source is not None else _timed(frames)):
            window.append((index, prepare_frame(frame, cfg, warn=warned), arrived))
            if len(window) < clip:
                continue
            raw = step(torch.stack([f for _, f, _ in window])[None])
            values = {k: float(v[0]) for k, v in raw.items() if k != "map"}
            stats = FrameStats(np.zeros(1, dtype=np.int64), {k: np.array([v]) for k, v in values.items()},
                               calibration=ranges)
            score = float(np.asarray(detector.scorer(stats), dtype=np.float64)[0])
            scored_index, _, scored_arrival = window[offset]
            yield FrameResult(
                index=scored_index, score=score, anomalous=score >= threshold, threshold=threshold,
                signals={**values, "psnr": float(stats["psnr"][0])}, latency=time.perf_counter() - scored_arrival,
                dropped=source.dropped if source is not None else 0, policy=policy,
                error_map=_as_array(raw["map"][0]) if maps else None)
    finally:
        step.close()


def _as_array(x: Any) -> np.ndarray:
    return x.float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
