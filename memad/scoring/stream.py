"""Frame-by-frame scoring of a stream: a result as soon as each frame's clip is complete.

:func:`stream` keeps the last ``clip_length`` frames, runs each new clip through the detector
(the memory's test-time write applied online, as in the sequential test), and scores the
frame's signals with the detector's calibration, so that a frame's score depends on it
alone. Memory use is constant: nothing grows with the stream. On a finite video the scores
equal the offline calibrated scores of ``test.mode: sequential``. A frame's result waits for
what its decision does (:mod:`memad.scoring.baseline`): the next clip's input signals
(``test.align_inputs``) and the next ``test.confirm`` frames; the rest come when the stream ends
or is interrupted (Ctrl-C).

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
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from ..config import image_hw
from ..errors import ConfigError
from ..frames import UNIT_RANGE, FloatRange, FrameReader
from ..interfaces import FrameStats
from .baseline import StreamBaseline, StreamDecisions
from .calibration import require_calibration
from .step import ClipStep, StepModel

__all__ = ["FrameResult", "stream"]

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


def stream(model: StepModel, frames: Iterable[Any], *, policy: Policy = "block", maps: bool = False,
           device: str | torch.device | None = None, float_range: FloatRange = UNIT_RANGE) -> Iterator[FrameResult]:
    """Yield a :class:`FrameResult` per frame of ``frames`` once its clip is complete (see the module docstring).

    ``model`` is a calibrated :class:`~memad.scoring.step.StepModel`: a detector
    (:meth:`Detector.calibrate`), or an exported model (:func:`memad.scoring.exported.load_exported`),
    which runs its own engine. Frames are any kind :class:`memad.frames.FrameReader` takes
    (float frames in ``float_range``). The memory is written as the stream goes and restored
    when the generator is closed or exhausted.

    >>> import memad, numpy as np  # doctest: +SKIP
    >>> det = memad.load("runs/pred/checkpoint.pt")  # doctest: +SKIP
    >>> for r in det.stream(frames):  # doctest: +SKIP
    ...     print(r.index, r.score, r.anomalous)
    """
    if policy not in ("block", "drop"):
        raise ConfigError(f"policy: expected 'block' or 'drop', got {policy!r}")
    cal = require_calibration(model, "streamed scores")
    cfg = model.config
    reader = FrameReader(cfg["data"]["channels"], image_hw(cfg), source="stream", float_range=float_range)
    step = model.make_step(maps, torch.device(device) if device is not None else None)
    threshold = float(model.threshold_ if model.threshold_ is not None else cal["threshold"])
    return _loop(model, step, reader, frames, cal, threshold, policy, maps)


def _loop(model: StepModel, step: ClipStep, reader: FrameReader, frames: Iterable[Any], cal: dict[str, Any],
          threshold: float, policy: str, maps: bool) -> Iterator[FrameResult]:
    clip, offset = model.clip_length, model.score_offset
    ranges, baseline = cal["signals"], StreamBaseline(cal)  # the stream's own baseline (test.warmup)
    # the next clip's input signals (test.align_inputs), the running floor (test.relative), the next frames
    # (test.confirm): a frame's result comes once what its decision waits for has arrived
    decisions = StreamDecisions(cal, lambda stats: float(np.asarray(model.scorer(stats), dtype=np.float64)[0]))
    window: collections.deque = collections.deque(maxlen=clip)
    source = _LatestFrames(frames, keep=1) if policy == "drop" else None

    def result(frame: tuple[int, float, dict[str, float], Any], score: float) -> FrameResult:
        index, arrived, values, error_map = frame
        return FrameResult(index=index, score=score, anomalous=score >= threshold, threshold=threshold,
                           signals=values, latency=time.perf_counter() - arrived,
                           dropped=source.dropped if source is not None else 0, policy=policy, error_map=error_map)

    try:
        for index, frame, arrived in (source if source is not None else _timed(frames)):
            window.append((index, reader(frame, index), arrived))
            if len(window) < clip:
                continue
            raw = step(torch.stack([f for _, f, _ in window])[None])
            values = {k: float(v[0]) for k, v in raw.items() if k != "map"}
            stats = FrameStats(np.zeros(1, dtype=np.int64), {k: np.array([v]) for k, v in values.items()},
                               calibration=ranges)
            scored_index, _, scored_arrival = window[offset]
            frame_of = (scored_index, scored_arrival, {**values, "psnr": float(stats["psnr"][0])},
                        _as_array(raw["map"][0]) if maps else None)
            for done, score in decisions.push(baseline(stats), frame_of):
                yield result(done, score)
    except KeyboardInterrupt:  # Ctrl-C: the frames read so far are decided as at the stream's end, then it stops
        for done, score in decisions.finish():
            yield result(done, score)
        raise
    else:
        for done, score in decisions.finish():
            yield result(done, score)
    finally:
        step.close()


def _as_array(x: Any) -> np.ndarray:
    return x.float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
