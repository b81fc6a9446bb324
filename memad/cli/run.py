"""``memad list``, ``memad train``, ``memad eval`` and ``memad calibrate``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable

from .common import RATE, add_bootstrap, add_logger, add_set, number, overrides, print_json, report

Handler = Callable[[argparse.Namespace], int]


def setup_list(p: argparse.ArgumentParser) -> Handler:
    """registered components, presets and commands, with where each came from"""
    p.add_argument("--json", action="store_true")

    def run(args: argparse.Namespace) -> int:
        from ..registry import KINDS, get_registry

        reg = get_registry()
        if args.json:
            print_json({
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
                doc = e.obj.get("description", "") if kind == "preset" else e.obj.__doc__ or ""
                desc = doc.strip().split("\n")[0]
                print(f"  {e.name:<{width}}  [{e.source}]  {desc}")
        if reg.failures:
            print("plugins that failed to load:")
            for f in reg.failures:
                print(f"  {f.name} [{f.source}]: {f.error}")
        return 0

    return run


def _add_calibration_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--false-alarm-rate", type=RATE, default=0.01, metavar="RATE",
                   help="calibration: the fraction of normal frames the threshold may flag (default 0.01)")
    p.add_argument("--videos", nargs="+", metavar="NAME",
                   help="calibration: these normal videos of DATA's training split (default: the ones held out of "
                        "training, else all)")


def _print_calibration(cal: dict, path: Path | str) -> None:
    check = cal["check_false_alarm_rate"]
    spread = list((cal.get("check_per_video") or {}).values())
    checked = (f"cross-validated by video: {check:.2%} of normal frames flagged, {min(spread):.1%} to "
               f"{max(spread):.1%} per video" if check is not None and spread else "one video: no cross-validation")
    # the scoring settings the threshold was fitted under (test.warmup, smooth, relative, confirm, align_inputs,
    # threshold_over)
    settings = [f"{k} {cal[k]}" for k, least in (("warmup", 1), ("smooth", 2), ("relative", 1), ("confirm", 1))
                if (cal.get(k) or 0) >= least]
    settings += ["inputs aligned"] if cal.get("align_inputs") else []
    settings += ["over videos"] if cal.get("threshold_over") == "videos" else []
    fitted = f" ({', '.join(settings)})" if settings else ""
    print(f"memad: calibrated on {cal['frames']} normal frames of {len(cal['videos'])} videos ({cal['videos_from']}): "
          f"threshold {cal['threshold']:.4f}{fitted} for a false-alarm "
          f"rate of {cal['false_alarm_rate']:.2%} ({checked}); "
          f"saved in {path}", file=sys.stderr)


def _without_crops(cal: dict) -> dict:
    """The calibration for printing: the memory record's exemplar crops (base64 PNG) counted, not printed."""
    memory = cal.get("memory")
    if not memory:
        return cal
    levels = [{**lv, "exemplars": f"{sum(e is not None for e in lv['exemplars'])} PNG strips"}
              for lv in memory["levels"]]
    return {**cal, "memory": {**memory, "levels": levels}}


def setup_train(p: argparse.ArgumentParser) -> Handler:
    """train a preset on a dataset (and calibrate its scores on the training videos)"""
    p.add_argument("preset")
    p.add_argument("--data", required=True, help="dataset root, a data spec such as 'synthetic' or 'ucsd:PATH'")
    p.add_argument("--epochs", type=number(int, low=0))
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--out", help="folder for the checkpoint (default: runs/PRESET)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--no-calibrate", action="store_true", help="skip the calibration after training")
    _add_calibration_options(p)
    p.add_argument("--eval", action="store_true", help="evaluate on the test split after training")
    p.add_argument("--labels", help="label file for --eval (.npy or .mat)")
    p.add_argument("--json", action="store_true", help="with --eval: print the metrics as JSON")
    add_bootstrap(p)
    add_logger(p)
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..detector import build
        from ..distributed import is_main
        from ..outputs import out_folder
        from ..tracking import Tracking, resolve_loggers

        det = build(args.preset, **overrides(args))
        out = out_folder(args.out or Path("runs") / det.config["name"])
        names = resolve_loggers(args.logger) if is_main() else []  # a missing package stops us before training
        with Tracking(names, out, det.config["name"], tags={"preset": args.preset, "seed": det.config["train"]["seed"],
                                                            "command": "train", "data": args.data}) as tracking:
            return _train(args, det, out, tracking)

    return run


def _train(args: argparse.Namespace, det, out: Path, tracking) -> int:
    """``memad train``'s work, with ``tracking`` (a :class:`memad.tracking.Tracking`, maybe without loggers)."""
    from ..checkpoint import update_checkpoint
    from ..data import VideoSet, open_split
    from ..distributed import is_main
    from ..training import CHECKPOINT_NAME

    # With --eval, a bad test split or label file must fail now, not after hours of training.
    test_set = open_split(args.data, "testing", det.config, labels=args.labels) if args.eval else None
    counts = det.count_parameters()
    if is_main():  # under torchrun: rank 0 speaks for all
        print(f"memad: training {det.config['name']} ({counts['total']:,} parameters) on {args.data} -> {out}",
              file=sys.stderr)
    train_set = open_split(args.data, "training", det.config)  # opened once: for the check below and for fit
    if not args.no_calibrate and args.videos is None:  # too little held out to calibrate on: say so before training
        from ..scoring.calibration import warn_holdout_shortfall

        warn_holdout_shortfall(det, train_set.lengths, args.false_alarm_rate)
    tracking.log_config(det.config)
    callbacks = [tracking] if tracking else []  # step records cost a sync per step: only for a logger
    summary = det.fit(train_set, out=out, resume=not args.no_resume, callbacks=callbacks).fit_summary_
    last = det.history_[-1] if det.history_ else {}
    if is_main():
        where = summary["device"] if summary["processes"] == 1 else f"{summary['processes']} processes"
        print(f"memad: {summary['epochs']} epochs in {summary['seconds']:.1f}s on {where}; "
              f"last loss {last.get('loss', float('nan')):.5f}; checkpoint {out / CHECKPOINT_NAME}",
              file=sys.stderr)
    if not args.no_calibrate:
        det.calibrate(args.data, false_alarm_rate=args.false_alarm_rate, videos=args.videos)
        if is_main():
            update_checkpoint(out / CHECKPOINT_NAME, calibration=det.calibration_, threshold=det.threshold_)
            _print_calibration(det.calibration_, out / CHECKPOINT_NAME)
    tracking.log_reference("checkpoint", out / CHECKPOINT_NAME)
    tracking.log_artifacts([out / "config.yaml", out / "history.json"])
    if args.eval:
        test_data = test_set if isinstance(test_set, VideoSet) else args.data
        metrics = det.evaluate(test_data, labels=args.labels, resamples=args.resamples, seed=args.bootstrap_seed)
        tracking.log_final(metrics)
        return report(metrics, args.json)
    return 0


def setup_eval(p: argparse.ArgumentParser) -> Handler:
    """evaluate a checkpoint on a dataset's test split"""
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", help="label file (.npy or .mat); found in the dataset root when omitted")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")
    add_bootstrap(p)
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..detector import load

        det = load(args.checkpoint, overrides=overrides(args))
        return report(det.evaluate(args.data, labels=args.labels, resamples=args.resamples, seed=args.bootstrap_seed),
                      args.json)

    return run


def setup_calibrate(p: argparse.ArgumentParser) -> Handler:
    """calibrate a checkpoint's scores on normal videos (stored in the checkpoint)"""
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="data whose training split holds normal videos")
    _add_calibration_options(p)
    p.add_argument("--out", help="write the calibrated checkpoint here instead of updating CHECKPOINT")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print the calibration as JSON")
    add_set(p)

    def run(args: argparse.Namespace) -> int:
        from ..checkpoint import update_checkpoint
        from ..detector import load
        from ..outputs import out_file

        target = out_file(args.out or args.checkpoint, suffixes=(".pt",), default_name=Path(args.checkpoint).name)
        with warnings.catch_warnings():  # a --set that changes the scores drops the old calibration: this replaces it
            warnings.filterwarnings("ignore", message=".*changes the scores, so the stored calibration")
            det = load(args.checkpoint, overrides=overrides(args))
        det.calibrate(args.data, false_alarm_rate=args.false_alarm_rate, videos=args.videos)
        update_checkpoint(args.checkpoint, target, config=det.config, calibration=det.calibration_,
                          threshold=det.threshold_)
        if args.json:
            print_json(_without_crops(det.calibration_))
        _print_calibration(det.calibration_, target)
        return 0

    return run


COMMANDS = {"list": setup_list, "train": setup_train, "eval": setup_eval, "calibrate": setup_calibrate}
