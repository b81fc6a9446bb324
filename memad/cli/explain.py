"""``memad explain``: what a checkpoint's memory items hold and how test frames read them."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .common import add_set, overrides, print_json

Handler = Callable[[argparse.Namespace], int]


def setup_explain(p: argparse.ArgumentParser) -> Handler:
    """explain a checkpoint's memory: item atlas, usage, geometry, frame views and explain.json"""
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="dataset root or data spec: its training split for the atlas and "
                                                 "usage, its test split for the frame views")
    p.add_argument("--out", default="runs/explain", help="output folder (default runs/explain)")
    p.add_argument("--frames", nargs="+", metavar="VIDEO:INDEX",
                   help="test frames to show (INDEX 0-based in the video; default: the top-scored ones)")
    p.add_argument("--top", type=int, default=4, help="how many top-scored frames to show without --frames (4)")
    p.add_argument("--k", type=int, default=8, help="training crops per item in the atlas (default 8)")
    p.add_argument("--context", type=float, default=0.5,
                   help="each crop is the query's cell widened by this many cells on every side (default 0.5)")
    p.add_argument("--distinct", action="store_true",
                   help="at most one crop per item and grid position (a static camera's nearest crops are otherwise "
                        "often one spot in consecutive frames)")
    p.add_argument("--labels", help="label file for the test split (.npy or .mat)")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print explain.json")
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        import json

        from ..detector import load
        from ..errors import ConfigError
        from ..explain import explain

        if args.top < 1:
            raise ConfigError(f"--top: expected at least 1 frame, got {args.top}")
        if args.context < 0:
            raise ConfigError(f"--context: expected 0 or more cells, got {args.context}")
        det = load(args.checkpoint, overrides=overrides(args))
        result = explain(det, args.data, frames=args.frames, top=args.top, k=args.k, context=args.context,
                         distinct=args.distinct, labels=args.labels)
        files = result.write(args.out)
        if args.json:
            with open(files["json"]) as fh:
                print_json(json.load(fh))
        for lv in result.levels:
            u = lv.train
            print(f"memad: {lv.name}: {lv.num_items} items, effective number {u.effective:.2f} on the training split, "
                  f"{len(u.dead)} dead, {len(u.rare)} rare", file=sys.stderr)
        print(f"memad: wrote {len(files) - 2 + len(files['frames'])} figures and explain.json -> {args.out}",
              file=sys.stderr)
        return 0

    return run


COMMANDS = {"explain": setup_explain}
