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


def add_bootstrap(p: argparse.ArgumentParser) -> None:
    """``--resamples`` and ``--bootstrap-seed``: the bootstrap interval of the frame AUROC."""
    p.add_argument("--resamples", type=int, default=1000, metavar="N",
                   help="bootstrap draws of the test videos for frame_auroc_ci95 (default 1000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="S",
                   help="numpy seed of those draws (default 0)")


def add_logger(p: argparse.ArgumentParser) -> None:
    """``--logger NAME``: experiment trackers (repeatable or comma-separated; docs/tracking.md)."""
    p.add_argument("--logger", action="append", metavar="NAME",
                   help="log the run to this registered logger too: tensorboard, mlflow or a plugin's (repeatable, "
                        "or comma-separated; needs pip install \"memad[tracking]\" for the built-in ones)")


def add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set data.image_size=64 (repeatable)")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


#: The metrics `memad eval` prints, in order (those a run has); docs/metrics.md defines each.
REPORTED = ("frame_auroc", "frame_auroc_ci95", "frame_auroc_macro", "frame_auroc_macro_pad", "frame_auroc_per_scene",
            "aupr", "eer", "pixel_auroc", "rbdc", "tbdc", "calibrated_frame_auroc", "threshold", "precision", "recall",
            "f1", "false_alarm_rate", "event_recall", "false_alarms_per_1000", "delay_median", "delay_p90", "fps",
            "frames", "anomalous_frames", "mode")


def report(metrics: dict[str, Any], as_json: bool) -> int:
    """Print ``metrics`` (rank 0 only under torchrun: every rank holds the same)."""
    if not is_main():
        return 0
    if as_json:
        print_json(metrics)
        return 0

    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):  # an interval
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    for key in REPORTED:
        if key not in metrics:
            continue
        if isinstance(metrics[key], dict):  # per scene: one line each
            for scene, value in metrics[key].items():
                print(f"{'scene ' + str(scene):>22}: {fmt(value)}")
        else:
            print(f"{key:>22}: {fmt(metrics[key])}")
    for cat, m in (metrics.get("per_category") or {}).items():  # image sets: one line per defect type
        detail = "normal" if m["normal"] else f"auroc {fmt(m['auroc'])}"
        print(f"{'category ' + cat:>22}: {detail} ({m['images']} images)")
    return 0
