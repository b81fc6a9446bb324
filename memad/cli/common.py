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


def number(kind: type, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False):
    """An argparse ``type`` for a number in a range: a bad value stops the command before any work, with
    argparse's one line naming the option (``argument --timeout: expected a number > 0, got -1``).

    >>> number(float, low=0, low_open=True)("2.5")
    2.5
    """
    what = "an integer" if kind is int else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = f"{what}{' ' + ' and '.join(bounds) if bounds else ''}"

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if isinstance(value, float) and value != value:  # NaN
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        if (low is not None and (value < low or (low_open and value == low))) or \
                (high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


#: The false-alarm rate a calibration is asked for: a fraction strictly between 0 and 1.
RATE = number(float, low=0, high=1, low_open=True, high_open=True)
