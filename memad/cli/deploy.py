"""``memad detect`` (where are the anomalies in this footage?) and ``memad export`` (the per-frame step as
ONNX or TorchScript, checked against PyTorch)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .common import add_set, number, overrides, print_json

Handler = Callable[[argparse.Namespace], int]


def setup_detect(p: argparse.ArgumentParser) -> Handler:
    """score a video file, frame folder, folder of videos, camera or stream URL: scores, events, video, report"""
    from ..reports.detect import DetectOptions

    d = DetectOptions()
    p.add_argument("checkpoint", help="a calibrated checkpoint (memad train calibrates; else memad calibrate)")
    p.add_argument("input", help="a video file, a folder of frames or of videos, a camera index (0, 1...) or a "
                                 "stream URL (rtsp://, http://...)")
    p.add_argument("--out", default="runs/detect", help="output folder (default runs/detect)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of another run in --out")
    p.add_argument("--smoothing", type=number(int, low=1), default=d.smoothing, metavar="FRAMES",
                   help=f"causal moving average before the events (default {d.smoothing})")
    p.add_argument("--release", type=number(float, low=0), default=d.release, metavar="FRACTION",
                   help=f"hysteresis: an event ends below threshold - FRACTION x |threshold| (default {d.release})")
    p.add_argument("--min-frames", type=number(int, low=1), default=d.min_frames,
                   help=f"shortest event (default {d.min_frames})")
    p.add_argument("--merge-gap", type=number(int, low=0), default=d.merge_gap,
                   help=f"merge events fewer frames apart than this (default {d.merge_gap})")
    p.add_argument("--policy", choices=("block", "drop"),
                   help="when input outruns the model: wait for it (block, the default for files) or skip frames "
                        "and count them (drop, the default for cameras and streams)")
    p.add_argument("--timeout", type=number(float, low=0, low_open=True), default=d.timeout, metavar="SECONDS",
                   help=f"how long a stream URL may take to answer (default {d.timeout:g})")
    p.add_argument("--engine", choices=("torch", "onnxruntime", "torchscript"), default=None,
                   help="torch for a checkpoint (default); onnxruntime or torchscript for a file from memad export "
                        "(the default for .onnx and .ts files)")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..reports.detect import detect

        det, engine = _load_for_detect(args)
        options = DetectOptions(smoothing=args.smoothing, release=args.release, min_frames=args.min_frames,
                                merge_gap=args.merge_gap, policy=args.policy, video=not args.no_video,
                                html=not args.no_html, timeout=args.timeout)

        def echo(line: str) -> None:
            print(line, flush=True)

        try:
            summary = detect(det, args.input, args.out, options=options, overwrite=args.overwrite,
                             engine=engine, checkpoint=args.checkpoint, echo=echo)
        except KeyboardInterrupt:
            print(f"memad: stopped; what was scored so far is written in {args.out}", file=sys.stderr)
            return 130
        if args.json:
            print_json(summary)
        for s in summary["summaries"]:
            print(f"memad: {s['video']}: {s['frames_scored']} frames scored ({s['fps']:.1f}/s), {s['events']} "
                  f"event(s), {s['frames_dropped']} dropped -> {args.out}", file=sys.stderr)
        return 0

    return run


def _load_for_detect(args: argparse.Namespace):
    """The detector (a checkpoint) or exported model (an .onnx / .ts file) and the engine that runs it."""
    from ..errors import ConfigError

    exported = str(args.checkpoint).endswith((".onnx", ".ts"))
    engine = args.engine or ("onnxruntime" if str(args.checkpoint).endswith(".onnx") else
                             "torchscript" if exported else "torch")
    if engine == "torch":
        if exported:
            raise ConfigError(f"{args.checkpoint}: an exported model runs with --engine onnxruntime or torchscript")
        from ..detector import load

        return load(args.checkpoint, overrides=overrides(args)), engine
    if not exported:
        raise ConfigError(f"--engine {engine}: expects a file written by memad export (.onnx or .ts), got "
                          f"{args.checkpoint}")
    if args.set:
        raise ConfigError("--set: an exported model's config is fixed; export again with the changes")
    from ..scoring.exported import load_exported

    return load_exported(args.checkpoint), engine


def setup_export(p: argparse.ArgumentParser) -> Handler:
    """export a calibrated checkpoint's per-frame step as ONNX or TorchScript, checked against PyTorch"""
    p.add_argument("checkpoint")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", help="the file to write, or a folder to write it in (default: the checkpoint's name "
                                 "with .onnx or .ts)")
    p.add_argument("--data", help="check the export on the start of this data's first test video (default: the "
                                  "generated synthetic one at the model's size)")
    p.add_argument("--frames", type=number(int, low=2), default=24, help="frames of the check sequence (default 24)")
    p.add_argument("--atol", type=number(float, low=0, low_open=True), default=1e-4,
                   help="largest absolute score difference from PyTorch allowed, beyond what float32 rounding of "
                        "the signals explains (default 1e-4)")
    p.add_argument("--json", action="store_true")
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from ..detector import load
        from ..outputs import out_file
        from ..scoring.export import export

        suffix = ".onnx" if args.format == "onnx" else ".ts"
        name = Path(args.checkpoint).with_suffix(suffix).name
        out = out_file(args.out or Path(args.checkpoint).with_suffix(suffix), suffixes=(suffix,), default_name=name)
        det = load(args.checkpoint, overrides=overrides(args))
        report = export(det, out, args.format, data=args.data, frames=args.frames, atol=args.atol)
        if args.json:
            print_json(report)
        print(f"memad: exported {args.checkpoint} -> {report['path']} ({args.format}); largest score difference from "
              f"PyTorch on {report['scores_checked']} frames: {report['max_abs_score_difference']:.2e} "
              f"(allowed {report['atol']:g})", file=sys.stderr)
        return 0

    return run


COMMANDS = {"detect": setup_detect, "export": setup_export}
