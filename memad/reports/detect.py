"""``memad detect``: a calibrated detector run over footage, frame by frame, with everything a person
needs to see where the anomalies are.

For each video of the input (see :mod:`memad.data.footage`) it writes, into its own folder:

- ``scores.csv`` and ``scores.jsonl``: per scored frame, the calibrated score, the smoothed score,
  the 0/1 decision and the per-frame signals (written and flushed line by line);
- ``events.json`` and ``events.csv``: anomalous events (start, end, peak score, peak frame) after
  temporal smoothing and hysteresis (:mod:`memad.events`);
- ``annotated.mp4``: each frame with its error heatmap, the score curve and the threshold;
- ``report.html``: one self-contained page, offline: the score timeline with the events, and
  clicking a point shows that frame with its heatmap and, for a memory that explains its reads and a
  calibration that recorded them, the item read in the frame's largest-error region, that item's
  exemplars from the calibration's normal frames and its distance against theirs
  (:mod:`memad.reports.memory_view`);
- ``summary.json``: what was run on what, frame counts, dropped frames, speed.

Memory stays constant whatever the length: frames are read, scored and written one at a time
(the report keeps a bounded set of thumbnails). A live source prints each event as it closes
and stops cleanly on Ctrl-C with everything written so far flushed.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from ..data.footage import Footage, resolve_footage
from ..errors import ConfigError, DataError
from ..events import EventTracker
from ..fileio import write_json_atomic, write_text_atomic
from ..outputs import out_folder
from ..overlay import overlay_heatmap
from ..scoring.calibration import disagreement, require_calibration
from ..scoring.step import StepModel
from ..scoring.stream import stream
from .html_report import ReportBuilder
from .memory_view import MemoryView

__all__ = ["DetectOptions", "detect", "MANIFEST"]

#: Written first into the output folder: marks it as a detect run's (and says which).
MANIFEST = "detect.json"


@dataclass
class DetectOptions:
    """How ``memad detect`` decides and what it writes.

    Attributes:
        smoothing: frames of the causal moving average applied to the scores before the events.
        release: the hysteresis: an event that started at the threshold ends when the smoothed
            score falls below ``threshold - release * |threshold|`` (0: at the threshold).
        min_frames: shortest event kept, in frames.
        merge_gap: events separated by fewer frames than this are merged.
        policy: ``block`` or ``drop`` when input outruns the model (default: drop for live sources).
        video: write the annotated video.
        html: write the HTML report.
        thumbnails: most frames (with heatmaps) embedded in the report.
        timeout: seconds a stream URL may take to open, and to deliver each frame after (> 0).
    """

    smoothing: int = 5
    release: float = 0.1
    min_frames: int = 3
    merge_gap: int = 5
    policy: str | None = None
    video: bool = True
    html: bool = True
    thumbnails: int = 400
    timeout: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)


#: What one video's run writes (into ``out``, or ``out/<video>/`` for a folder of videos).
OUTPUTS = ("scores.csv", "scores.jsonl", "events.json", "events.csv", "annotated.mp4", "report.html", "summary.json")


def _earlier_run(out: Path) -> tuple[str, list[Path]]:
    """What ``out`` holds, and the paths of an earlier detect run in it (its manifest, its outputs and its
    per-video folders); an error naming a file that no detect run writes."""
    held = out / MANIFEST
    try:
        manifest = json.loads(held.read_text()) if held.is_file() else None
    except (OSError, ValueError):
        manifest = None
    if manifest is None:
        return "other files", []
    folders = [out / v for v in manifest.get("videos", []) if len(manifest.get("videos", [])) > 1]
    ours = {held, *(out / n for n in OUTPUTS), *folders, *(f / n for f in folders for n in OUTPUTS)}
    stray = [p for p in out.rglob("*") if p not in ours and not (p.is_dir() and p in folders)
             and not p.name.startswith(".")]
    if stray:
        raise ConfigError(f"--out {out}: holds {stray[0]}, which memad detect did not write; choose another folder "
                          f"(--overwrite replaces only an earlier run's own outputs)")
    return f"the detect run of {manifest.get('input')!r}", [p for p in ours if p.exists()]


def _check_out(out: Path, overwrite: bool, run: dict[str, Any]) -> None:
    """Refuse an output folder that holds another run (unless ``overwrite``: then its outputs are removed as a
    whole, so nothing stale survives beside the new run's); claim it for this one."""
    out_folder(out)
    if out.is_dir() and any(out.iterdir()):
        what, earlier = _earlier_run(out)
        if not overwrite or not earlier:
            raise ConfigError(f"--out {out}: already holds {what}; choose another folder"
                              + (" or pass --overwrite" if earlier else ""))
        for path in sorted(earlier, key=lambda p: len(p.parts), reverse=True):  # files before their folders
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MANIFEST, run)


class _Rows:
    """``scores.csv`` and ``scores.jsonl`` written and flushed one frame at a time; ``written`` counts them."""

    def __init__(self, folder: Path, signals: list[str]):
        self.signals, self.written = signals, 0
        self._csv = open(folder / "scores.csv", "w", newline="")
        self._jsonl = open(folder / "scores.jsonl", "w")
        self._writer = csv.writer(self._csv)
        self._writer.writerow(["frame", "score", "smoothed", "anomalous", "event", "latency_ms", *signals])

    def write(self, r, smoothed: float, decision: int, event: int | None) -> None:
        signals = [r.signals.get(k) for k in self.signals]
        self._writer.writerow([r.index, f"{r.score:.6g}", f"{smoothed:.6g}", decision, "" if event is None else event,
                               f"{r.latency * 1e3:.2f}", *(f"{v:.6g}" for v in signals)])
        self._jsonl.write(json.dumps({"frame": r.index, "score": r.score, "smoothed": smoothed, "anomalous": decision,
                                      "event": event, "latency_ms": round(r.latency * 1e3, 3),
                                      **dict(zip(self.signals, signals))}) + "\n")
        self._csv.flush()
        self._jsonl.flush()
        self.written += 1

    def close(self) -> None:
        self._csv.close()
        self._jsonl.close()


def _events_files(folder: Path, events: list[dict[str, Any]]) -> None:
    write_json_atomic(folder / "events.json", events)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["event", "start", "end", "frames", "peak_frame", "peak_score",
                                             "start_seconds", "end_seconds"], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(events)
    write_text_atomic(folder / "events.csv", buf.getvalue())


def _tap(frames: Iterator[np.ndarray], keep: int, recent: collections.OrderedDict,
         read: list[int]) -> Iterator[np.ndarray]:
    """Pass frames on, remembering the last ``keep`` by index (the frames their results refer to) and counting
    them in ``read[0]``."""
    for index, frame in enumerate(frames):
        read[0] = index + 1
        recent[index] = frame
        while len(recent) > keep:
            recent.popitem(last=False)
        yield frame


def run_footage(model: StepModel, footage: Footage, folder: Path, options: DetectOptions, engine: str = "torch",
                echo: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Detect on one video (see the module docstring); returns its summary."""
    from .annotated_video import AnnotatedVideoWriter

    cal = require_calibration(model, "memad detect")
    threshold = float(model.threshold_ if model.threshold_ is not None else cal["threshold"])
    folder.mkdir(parents=True, exist_ok=True)
    fps = footage.fps or 25.0
    policy = options.policy or ("drop" if footage.live else "block")
    tracker = EventTracker(threshold, window=options.smoothing, release=options.release,
                           min_frames=options.min_frames, merge_gap=options.merge_gap)
    recent: collections.OrderedDict = collections.OrderedDict()
    # Frames are remembered a while after they are read: under the drop policy the reader runs ahead.
    read = [0]
    frames = _tap(footage.frames(), model.clip_length + 64, recent, read)
    results = stream(model, frames, policy=policy, maps=True)  # a checkpoint, or an exported model (its engine)
    # Heat colours mean the same error on every frame: full heat at 10x the normal frames' mean error.
    vmax = 10 * float(cal["signals"].get("mse", [0.0, 0.005])[1])
    rows = video = None
    view = MemoryView.open(model) if options.html else None  # the memory's reads, per frame, for the report
    report = ReportBuilder(title=f"memad detect: {footage.name}", threshold=threshold, fps=fps,
                           max_images=options.thumbnails, memory=view.payload() if view else None,
                           memory_note=MemoryView.why_not(model), caveat=disagreement(cal)) if options.html else None
    events: list[dict[str, Any]] = []
    dropped, t0 = 0, time.perf_counter()
    bar = tqdm(total=footage.frame_count, desc=footage.name, unit="frame", disable=not progress or footage.live,
               dynamic_ncols=True)
    interrupted = False
    try:
        for r in results:
            if rows is None:
                rows = _Rows(folder, sorted(r.signals))
                if options.video:
                    video = AnnotatedVideoWriter(folder / "annotated.mp4", fps=fps, threshold=threshold)
            step = tracker.update(r.index, r.score)
            for event in step.closed:
                events.append(_event_record(event, len(events), fps))
                if footage.live:
                    echo(_describe(events[-1]))
            rows.write(r, step.smoothed, int(step.active), step.event)
            frame = recent.get(r.index)
            if frame is not None:
                shown = overlay_heatmap(frame, r.error_map, vmax=vmax)
                if video is not None:
                    video.write(shown, score=r.score, decision=bool(step.active), event=step.event is not None)
                if report is not None:
                    report.add(r.index, r.score, step.smoothed, int(step.active), shown,
                               view.regions(r.error_map) if view else None)
            dropped = r.dropped
            bar.update(r.index + 1 - bar.n if footage.frame_count else 1)
    except KeyboardInterrupt:
        interrupted = True  # stop cleanly: everything written so far is closed and flushed below
    finally:
        bar.close()
        if view is not None:
            view.close()
        for event in tracker.close():
            events.append(_event_record(event, len(events), fps))
            if footage.live:
                echo(_describe(events[-1]))
        if rows is not None:
            rows.close()
        if video is not None:
            video.close()
        _events_files(folder, events)
        if report is not None:
            report.write(folder / "report.html", events, meta={"source": footage.source, "threshold": threshold})
    seconds = time.perf_counter() - t0
    count = rows.written if rows is not None else 0  # what scores.csv holds, wherever an interrupt fell
    summary = {"video": footage.name, "source": footage.source, "live": footage.live, "frames_read": read[0],
               "frames_scored": count, "frames_dropped": dropped, "policy": policy, "engine": engine,
               "threshold": threshold,
               "events": len(events), "seconds": round(seconds, 3), "fps": count / seconds if seconds > 0 else None,
               "interrupted": interrupted, "options": asdict(options)}
    write_json_atomic(folder / "summary.json", summary)
    if interrupted:
        raise KeyboardInterrupt
    if count == 0:
        warnings.warn(f"{footage.source}: {read[0]} frame(s) read, none scored: {model.config['name']} scores a frame "
                      f"once a clip of {model.clip_length} frames is complete", stacklevel=2)
    return summary


def _event_record(event, number: int, fps: float) -> dict[str, Any]:
    rec = {"event": number, **event.as_dict()}
    rec["start_seconds"], rec["end_seconds"] = round(rec["start"] / fps, 3), round(rec["end"] / fps, 3)
    return rec


def _describe(event: dict[str, Any]) -> str:
    return (f"memad: event {event['event']}: frames {event['start']}-{event['end']} ({event['start_seconds']:.1f}-"
            f"{event['end_seconds']:.1f} s), peak {event['peak_score']:.3f} at frame {event['peak_frame']}")


def detect(model: StepModel, source: str, out: str | Path, *, options: DetectOptions | None = None,
           overwrite: bool = False, engine: str = "torch", checkpoint: str | None = None,
           echo: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Run ``model`` (a calibrated detector or exported model) over ``source`` and write the outputs under
    ``out``; returns the summary.

    One video writes into ``out``; a folder of videos into ``out/<video>/`` each.
    """
    options = options or DetectOptions()
    caveat = disagreement(require_calibration(model, "memad detect"))
    if caveat:
        warnings.warn(f"{model.config['name']}: {caveat}", stacklevel=2)
    footage = resolve_footage(source, channels=model.config["data"]["channels"], timeout=options.timeout)
    out = Path(out)
    run = {"input": str(source), "checkpoint": checkpoint, "engine": engine,
           "videos": [f.name for f in footage], "calibration_caveat": caveat,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _check_out(out, overwrite, run)
    summaries = []
    for f in footage:
        folder = out if len(footage) == 1 else out / f.name
        summaries.append(run_footage(model, f, folder, options, engine=engine, echo=echo, progress=progress))
    total = {**run, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "summaries": summaries}
    write_json_atomic(out / MANIFEST, total)
    if not any(s["frames_scored"] for s in summaries):
        read = ", ".join(f"{s['video']}: {s['frames_read']}" for s in summaries)
        raise DataError(f"{source}: no frame scored (frames read: {read}); {model.config['name']} scores a frame "
                        f"once a clip of {model.clip_length} frames is complete (what was read is written in {out})")
    return total
