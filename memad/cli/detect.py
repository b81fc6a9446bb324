"""``memad detect``: where are the anomalies in this footage?"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .common import add_set, overrides, print_json

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
    p.add_argument("--smoothing", type=int, default=d.smoothing, metavar="FRAMES",
                   help=f"causal moving average before the events (default {d.smoothing})")
    p.add_argument("--release", type=float, default=d.release, metavar="FRACTION",
                   help=f"hysteresis: an event ends below threshold - FRACTION x |threshold| (default {d.release})")
    p.add_argument("--min-frames", type=int, default=d.min_frames, help=f"shortest event (default {d.min_frames})")
    p.add_argument("--merge-gap", type=int, default=d.merge_gap,
                   help=f"merge events fewer frames apart than this (default {d.merge_gap})")
    p.add_argument("--policy", choices=("block", "drop"),
                   help="when input outruns the model: wait for it (block, the default for files) or skip frames "
                        "and count them (drop, the default for cameras and streams)")
    p.add_argument("--timeout", type=float, default=d.timeout, metavar="SECONDS",
                   help=f"how long a stream URL may take to answer (default {d.timeout:g})")
    p.add_argument("--engine", default="torch", help="torch (default), or an exported model's engine")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..model.detector import load
        from ..reports.detect import detect

        det = load(args.checkpoint, overrides=overrides(args))
        options = DetectOptions(smoothing=args.smoothing, release=args.release, min_frames=args.min_frames,
                                merge_gap=args.merge_gap, policy=args.policy, video=not args.no_video,
                                html=not args.no_html, timeout=args.timeout)

        def echo(line: str) -> None:
            print(line, flush=True)

        try:
            summary = detect(det, args.input, args.out, options=options, overwrite=args.overwrite,
                             engine=args.engine, checkpoint=args.checkpoint, echo=echo)
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


COMMANDS = {"detect": setup_detect}
