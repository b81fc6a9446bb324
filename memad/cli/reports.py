"""``memad compare`` and ``memad maps``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .common import RATE, add_logger, add_set, number, overrides

Handler = Callable[[argparse.Namespace], int]


def setup_compare(p: argparse.ArgumentParser) -> Handler:
    """train and evaluate several presets on one dataset (over seeds): a table, plots and a report"""
    p.add_argument("presets", nargs="+", metavar="PRESET")
    p.add_argument("--data", required=True, help="dataset root, or a data spec such as 'synthetic'")
    p.add_argument("--seeds", type=number(int, low=1), default=1,
                   help="runs per preset, seeds base+0, base+1, ... (default 1)")
    p.add_argument("--epochs", type=number(int, low=0))
    p.add_argument("--seed", type=int, help="base seed (default: each preset's train.seed)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--labels", help="label file for the test split (.npy or .mat)")
    p.add_argument("--false-alarm-rate", type=RATE, default=0.01, metavar="RATE",
                   help="the calibrated threshold lets this fraction of normal training frames through (default 0.01)")
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.add_argument("--json", action="store_true", help="print results.json instead of the Markdown table")
    add_logger(p)
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..outputs import out_folder
        from ..reports.compare import compare

        out_folder(args.out)
        result = compare(args.presets, args.data, seeds=args.seeds, out=args.out, overrides=overrides(args),
                         labels=args.labels, false_alarm_rate=args.false_alarm_rate, plots=not args.no_plots,
                         loggers=args.logger or ())
        if args.json:
            print(result.files["json"].read_text())
        else:
            print(result.markdown(), end="")
        reused = sum(r.reused for r in result.runs)
        print(f"memad: {len(result.runs)} runs ({reused} reused) -> {result.out}; "
              f"report {result.files.get('report', result.files['markdown'])}", file=sys.stderr)
        return 0

    return run


def setup_maps(p: argparse.ArgumentParser) -> Handler:
    """write the anomaly maps of the top-scoring test images as a PNG grid"""
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="image folder (train/good, test/<defect>), digits:D, or video data")
    p.add_argument("--top", type=number(int, low=1), default=8, metavar="K", help="how many images (default 8)")
    p.add_argument("--columns", type=number(int, low=1), default=4)
    p.add_argument("--lowest", type=number(int, low=0), default=0, metavar="M",
                   help="also show the M lowest-scoring images, for contrast (default 0)")
    p.add_argument("--out", default="maps.png", metavar="FILE.png", help="where to write the grid (default maps.png)")
    p.add_argument("--labels", help="label file for video data (.npy or .mat)")
    p.add_argument("--device")
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..detector import load
        from ..outputs import out_file
        from ..reports.maps import write_maps

        args.out = out_file(args.out, suffixes=(".png",), default_name="maps.png")
        det = load(args.checkpoint, overrides=overrides(args))
        ranked = write_maps(det, args.data, args.out, top=args.top, columns=args.columns, labels=args.labels,
                            lowest=args.lowest)
        for row in ranked:
            label = "" if row["label"] is None else (" anomalous" if row["label"] else " normal")
            flagged = " FLAGGED" if row.get("flagged") else ""
            what = f"{row['category']}/{Path(row['file']).name}" if row["category"] is not None else row["file"]
            print(f"{row['rank']:>3}. {row['score']:.4f}  {what}{label}{flagged}")
        print(f"memad: wrote {args.out}", file=sys.stderr)
        return 0

    return run


COMMANDS = {"compare": setup_compare, "maps": setup_maps}
