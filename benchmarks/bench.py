"""Ped2 benchmark: train presets over seeds, score each trained model in both test modes.

For every preset and seed: train with the preset's settings (the paper's: 60 epochs for the
MNAD pair), then score the test split twice with the same weights, in ``sequential`` mode
(one frame per pass, the memory written after each frame: the paper's semantics) and in
``batched`` mode (``test.chunk`` frames per pass, the memory written once per chunk). Each
run records the metrics of both modes and their AUROC difference, training time and
clips/s, test frames/s per mode, peak GPU memory, device, PyTorch version, git commit, the
command line and the overrides.

    python benchmarks/bench.py                                   # mnad_pred, mnad_recon; 3 seeds; ../shared/data/ped2
    python benchmarks/bench.py --presets memae --seeds 3 --tag h100
    OMP_NUM_THREADS=1 python benchmarks/bench.py --presets mnad_pred --seeds 2 --epochs 2 \\
        --set data.image_size=64 --set "encoder.widths=[16,32,64,128]" --set train.max_steps_per_epoch=400 \\
        --tag cpu-small-64px                                   # the CPU check of docs/benchmarks.md
    python benchmarks/bench.py --summary-only                   # regenerate the table in docs/benchmarks.md

One JSON file per invocation: ``benchmarks/results/ped2_<tag>.json`` (``--tag``, default
device and time). It is rewritten after every run; rerunning with the same tag skips the
runs it already holds (same preset, seed and config) and refuses a run whose config differs.
``--summary-only`` rewrites only the text between the ``bench-summary`` markers of
``docs/benchmarks.md`` from every ``benchmarks/results/ped2_*.json`` and draws
``benchmarks/results/ped2_auroc.png``. ``--chunks C ...`` also scores batched mode with
other chunk sizes. ``--profile`` writes torch.profiler tables of a few
training steps and test frames per preset (``ped2_<tag>_profile_<preset>.md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from benchlib.environment import DOC, REPO, RESULTS, device_slug, environment  # noqa: F401 (used by tests)
from benchlib.ped2 import parse_overrides, preset_configs, run_benchmark
from benchlib.profiling import profile_preset
from benchlib.summary import _fmt, _mean_std, replace_between_markers, write_summary  # noqa: F401 (tests)

from memad import runtime
from memad.data import SplitCache
from memad.errors import MemadError

DEFAULT_DATA = REPO.parent / "shared" / "data" / "ped2"
DEFAULT_PRESETS = ("mnad_pred", "mnad_recon")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), metavar="PRESET",
                   help="presets to run (default: mnad_pred mnad_recon)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root (default ../shared/data/ped2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per preset: train.seed + 0, 1, ... (default 3)")
    p.add_argument("--epochs", type=int, help="training epochs (default: each preset's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every preset")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument("--tag", help="results file name: ped2_<tag>.json (default: device and time)")
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--copy-to", type=Path, help="also write the results file here after every run")
    p.add_argument("--checkpoints", type=Path,
                   help="save a checkpoint after every epoch under this folder, to resume a killed run "
                        "(costs time: off by default)")
    p.add_argument("--max-minutes", type=float,
                   help="start no run that would end after this many minutes, at the pace of the longest so far")
    p.add_argument("--warm-up", action=argparse.BooleanOptionalAction, default=None,
                   help="score a few frames untimed before each timed test pass (default: on CUDA only)")
    p.add_argument("--chunks", type=int, nargs="+", default=[], metavar="C",
                   help="also score in batched mode with these test.chunk sizes (AUROC and frames/s per size)")
    p.add_argument("--profile", action="store_true",
                   help="also profile a few training steps and test frames per preset (torch.profiler tables)")
    p.add_argument("--profile-only", action="store_true", help="profile, without the benchmark runs")
    p.add_argument("--summary-only", action="store_true",
                   help="only regenerate the table in docs/benchmarks.md from benchmarks/results/ped2_*.json")
    p.add_argument("--doc", type=Path, default=DOC, help="the document holding the bench-summary markers")
    p.add_argument("--no-progress", action="store_true")
    return p


def _shown_path(script: Path) -> str:
    """The script as run from the repository root (``benchmarks/bench.py``) when it lies inside it."""
    try:
        return script.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(script)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = ["python", _shown_path(Path(sys.argv[0]) if argv is None else Path(__file__)),
               *(sys.argv[1:] if argv is None else argv)]
    try:
        if args.summary_only:
            rows = write_summary(args.results, args.doc)
            print(f"bench: {len(rows)} rows from {args.results}/ped2_*.json -> {args.doc}", file=sys.stderr)
            return 0
        overrides = parse_overrides(args.set)
        if args.profile or args.profile_only:
            prof_overrides = {**overrides, **({"train.device": args.device} if args.device else {})}
            configs = preset_configs(args.presets, prof_overrides)
            dev = runtime.pick_device(next(iter(configs.values()))["train"]["device"])
            if dev.type == "cuda":
                torch.backends.cudnn.benchmark = True
            tag = args.tag or f"{device_slug(dev)}-{time.strftime('%Y%m%d-%H%M%S')}"
            splits = SplitCache(args.data)
            for preset, config in configs.items():
                text = profile_preset(preset, config, splits, dev)
                for folder in [args.results] + ([args.copy_to] if args.copy_to else []):
                    out = Path(folder) / f"ped2_{tag}_profile_{preset}.md"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(text)
                    print(f"bench: profile -> {out}", file=sys.stderr)
            if args.profile_only:
                return 0
        path = run_benchmark(args.presets, args.data, seeds=args.seeds, epochs=args.epochs, overrides=overrides,
                             tag=args.tag, results_dir=args.results, copy_to=args.copy_to,
                             checkpoints=args.checkpoints, device=args.device, warm_up=args.warm_up,
                             max_minutes=args.max_minutes, progress=not args.no_progress, command=command,
                             chunks=args.chunks)
        print(f"bench: results -> {path}", file=sys.stderr)
        return 0
    except MemadError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
