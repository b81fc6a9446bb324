"""``memad maps``: the anomaly maps of the top-scoring test images (or frames) as a PNG grid.

The grid is drawn by :func:`memad.plots.top_frames_grid`: each cell shows an image with its
per-pixel squared reconstruction error as a heatmap and the ground-truth mask outlined
in cyan where masks exist. For image sets each cell is captioned with its file name and
category (defect type or digit); the ranked list is also printed.

    memad maps runs/ae/checkpoint.pt --data path/to/mvtec/bottle --top 12 --out bottle_maps.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .cli import _add_set, _overrides, subcommand


def image_captions(scores) -> list[str] | None:
    """``"<category>/<file name>"`` per scored image of an image set, else None (videos keep their titles)."""
    cats = scores.extra.get("categories")
    if cats is None:
        return None
    files = scores.extra.get("files")
    return [f"{c}/{Path(f).name}" if files is not None else str(c) for c, f in
            zip(cats, files if files is not None else [None] * len(cats))]


def write_maps(detector, data: Any, out: str | Path, *, top: int = 8, columns: int = 4,
               labels: str | Path | None = None, lowest: int = 0) -> list[dict[str, Any]]:
    """Score the test split of ``data``, write the ``top`` highest-scoring maps to ``out``; returns them ranked.

    With ``lowest``, the grid also shows that many lowest-scoring images (from a new row, on the
    same colour scale) and the returned list ends with them, lowest last, each with its rank.
    """
    from .data import open_split
    from .images import image_table
    from .plots import top_frames_grid

    test = open_split(data, "testing", detector.config, labels=labels)
    scores = detector.score(test)
    captions = image_captions(scores)
    name = detector.config["name"]
    n = len(scores.scores)
    title = f"{name}: top {min(top, n)} of {n} by anomaly score"
    ranked = np.argsort(-np.asarray(scores.scores), kind="stable")
    shown = ranked[:top].tolist()
    low = [r for r in range(n - 1, -1, -1) if r >= top][:lowest][::-1]  # ranks, lowest last
    if low:
        title += f"; from the row after them, the {len(low)} lowest (same colour scale)"
    top_frames_grid(scores, test, out, k=top, columns=columns, captions=captions, title=title, lowest=lowest)
    rows = image_table(scores, detector.threshold_)
    return [{"rank": r + 1, **rows[i]} for r, i in enumerate(shown)] + \
        [{"rank": r + 1, **rows[ranked[r]]} for r in low]


@subcommand("maps")
def setup_maps(p: argparse.ArgumentParser):
    """write the anomaly maps of the top-scoring test images as a PNG grid"""
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="image folder (train/good, test/<defect>), digits:D, or video data")
    p.add_argument("--top", type=int, default=8, metavar="K", help="how many images (default 8)")
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--lowest", type=int, default=0, metavar="M",
                   help="also show the M lowest-scoring images, for contrast (default 0)")
    p.add_argument("--out", default="maps.png", metavar="FILE.png", help="where to write the grid (default maps.png)")
    p.add_argument("--labels", help="label file for video data (.npy or .mat)")
    p.add_argument("--device")
    _add_set(p)

    def run(args: argparse.Namespace) -> int:
        from .checkpoint import load
        from .config import apply_overrides, validate
        from .detector import Detector
        from .errors import ConfigError

        if args.top < 1:
            raise ConfigError(f"--top: expected at least 1 image, got {args.top}")
        if args.lowest < 0:
            raise ConfigError(f"--lowest: expected 0 or more images, got {args.lowest}")
        if not str(args.out).lower().endswith(".png"):
            raise ConfigError(f"--out: expected a .png file name, got {args.out!r}")
        det = load(args.checkpoint)
        overrides = _overrides(args)
        if overrides:
            threshold = det.threshold_
            state = det.state_dict()
            det = Detector(validate(apply_overrides(det.config, overrides)))
            det.load_state_dict(state)
            det.threshold_ = threshold
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
