"""The ``memad`` command line: list, train, eval (and more, added by subcommand modules).

Each subcommand is a function taking the parsed arguments; errors that are the
user's (bad config, missing data) print one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import MemadError


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .config import parse_assignment

    out: dict[str, Any] = {}
    for item in args.set or []:
        key, value = parse_assignment(item)
        out[key] = value
    if getattr(args, "epochs", None) is not None:
        out["train.epochs"] = args.epochs
    if getattr(args, "seed", None) is not None:
        out["train.seed"] = args.seed
    if getattr(args, "device", None) is not None:
        out["train.device"] = args.device
    return out


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# -- list ----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from .registry import KINDS, get_registry

    reg = get_registry()
    if args.json:
        _print_json({
            "components": {k: {e.name: e.source for e in reg if e.kind == k} for k in KINDS},
            "plugins": [{"name": n, "source": s} for n, s in reg.plugins],
            "failed": [{"name": f.name, "source": f.source, "error": f.error} for f in reg.failures],
        })
        return 0
    for kind in KINDS:
        entries = [e for e in reg if e.kind == kind]
        print("memories:" if kind == "memory" else f"{kind}s:")
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            desc = e.obj.get("description", "") if kind == "preset" else (e.obj.__doc__ or "").strip().split("\n")[0]
            print(f"  {e.name:<{width}}  [{e.source}]  {desc}")
    if reg.failures:
        print("plugins that failed to load:")
        for f in reg.failures:
            print(f"  {f.name} [{f.source}]: {f.error}")
    return 0


# -- train ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .data import VideoSet, open_split
    from .detector import build
    from .distributed import is_main
    from .training import CHECKPOINT_NAME, train

    det = build(args.preset, **_overrides(args))
    out = Path(args.out or Path("runs") / det.config["name"])
    # With --eval, a bad test split or label file must fail now, not after hours of training.
    test_set = open_split(args.data, "testing", det.config, labels=args.labels) if args.eval else None
    counts = det.count_parameters()
    if is_main():  # under torchrun: rank 0 speaks for all
        print(f"memad: training {det.config['name']} ({counts['total']:,} parameters) on {args.data} -> {out}",
              file=sys.stderr)
    summary = train(det, args.data, out=out, resume=not args.no_resume)
    last = det.history_[-1] if det.history_ else {}
    if is_main():
        where = summary["device"] if summary["processes"] == 1 else f"{summary['processes']} processes"
        print(f"memad: {summary['epochs']} epochs in {summary['seconds']:.1f}s on {where}; "
              f"last loss {last.get('loss', float('nan')):.5f}; checkpoint {out / CHECKPOINT_NAME}", file=sys.stderr)
    if args.eval:
        test_data = test_set if isinstance(test_set, VideoSet) else args.data
        return _report(det.evaluate(test_data, labels=args.labels), args.json)
    return 0


# -- eval ----------------------------------------------------------------------------------
def _report(metrics: dict[str, Any], as_json: bool) -> int:
    from .distributed import is_main

    if not is_main():  # under torchrun every rank holds the same metrics; rank 0 prints them
        return 0
    if as_json:
        _print_json(metrics)
        return 0

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    for key in ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc", "fps", "frames",
                "anomalous_frames", "mode"):
        if key in metrics:
            print(f"{key:>18}: {fmt(metrics[key])}")
    for cat, m in (metrics.get("per_category") or {}).items():  # image sets: one line per defect type
        detail = "normal" if m["normal"] else f"auroc {fmt(m['auroc'])}"
        print(f"{'category ' + cat:>18}: {detail} ({m['images']} images)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .checkpoint import load
    from .config import apply_overrides, validate

    det = load(args.checkpoint)
    overrides = _overrides(args)
    if overrides:
        from .detector import Detector

        cfg = validate(apply_overrides(det.config, overrides))
        state = det.state_dict()
        det = Detector(cfg)
        det.load_state_dict(state)
    return _report(det.evaluate(args.data, labels=args.labels), args.json)


# -- parser --------------------------------------------------------------------------------
SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def subcommand(name: str):
    """Register ``memad NAME``: decorate a function that adds arguments and returns the handler."""

    def deco(setup: Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]):
        SUBCOMMANDS[name] = setup
        return setup

    return deco


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set data.image_size=64 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="memad", description="Memory-augmented anomaly detection.")
    parser.add_argument("--version", action="version", version=f"memad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered components and presets, with where each came from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a preset on a dataset")
    p.add_argument("preset")
    p.add_argument("--data", required=True, help="dataset root (frame-folder layout) or 'synthetic'")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--out", help="folder for the checkpoint (default: runs/PRESET)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--eval", action="store_true", help="evaluate on the test split after training")
    p.add_argument("--labels", help="label file for --eval (.npy or .mat)")
    p.add_argument("--json", action="store_true", help="with --eval: print the metrics as JSON")
    _add_set(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset's test split")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", help="label file (.npy or .mat); found in the dataset root when omitted")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")
    _add_set(p)
    p.set_defaults(func=cmd_eval)

    for name, setup in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=(setup.__doc__ or "").strip().split("\n")[0])
        sp.set_defaults(func=setup(sp))
    return parser


def _load_subcommands() -> None:
    # Subcommands that live in their own modules register themselves on import.
    import importlib

    for module in ("memad.compare", "memad.maps"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    _load_subcommands()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MemadError as exc:
        print(f"memad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`memad list --json | head`): stop quietly, as Unix tools do.
        # stdout is pointed at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
