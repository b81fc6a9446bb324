"""Helpers shared by the built-in commands: ``--set`` overrides, JSON output, the metrics report."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..distributed import is_main


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of ``--set k=v`` and the shortcut options (``--epochs``, ``--seed``, ``--device``)."""
    from ..config import parse_assignment

    out: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        key, value = parse_assignment(item)
        out[key] = value
    for option, key in (("epochs", "train.epochs"), ("seed", "train.seed"), ("device", "train.device")):
        if getattr(args, option, None) is not None:
            out[key] = getattr(args, option)
    return out


def add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set data.image_size=64 (repeatable)")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


#: The metrics `memad eval` prints, in order (those a run has).
REPORTED = ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc", "calibrated_frame_auroc", "threshold",
            "precision", "recall", "f1", "false_alarm_rate", "fps", "frames", "anomalous_frames", "mode")


def report(metrics: dict[str, Any], as_json: bool) -> int:
    """Print ``metrics`` (rank 0 only under torchrun: every rank holds the same)."""
    if not is_main():
        return 0
    if as_json:
        print_json(metrics)
        return 0

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    for key in REPORTED:
        if key in metrics:
            print(f"{key:>22}: {fmt(metrics[key])}")
    for cat, m in (metrics.get("per_category") or {}).items():  # image sets: one line per defect type
        detail = "normal" if m["normal"] else f"auroc {fmt(m['auroc'])}"
        print(f"{'category ' + cat:>22}: {detail} ({m['images']} images)")
    return 0
