"""One-class benchmark on scikit-learn's handwritten digits, small enough for a CPU in minutes.

For each digit d: train on the training images of d only (``--data digits:d``, the fixed
stratified 60/40 split of ``memad.data.images``), test on all held-out images (d normal,
the other nine digits anomalous), image AUROC. Every variant gets the same small network
sizes (listed in ``SMALL`` and ``VARIANTS``), 3 seeds, and the image settings of
docs/images.md (no test-time memory writes), each (variant, digit) through ``memad.compare``.

    OMP_NUM_THREADS=1 python benchmarks/digits.py            # all variants, digits 0-9, seeds 0-2
    python benchmarks/digits.py --variants ae mnad_recon --digits 3 --seeds 1

Writes ``benchmarks/results/digits.json`` (every run), ``digits.md`` (the table of
docs/benchmarks.md) and ``digits_auroc.png`` (AUROC per digit, mean and spread); the run folders (checkpoints, scores) go under
``<out>/compare/``, which git ignores, and a rerun reuses the finished ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import memad

RESULTS = Path(__file__).parent / "results"

#: Shared by every variant: 16x16 grey images (the 8x8 digits upscaled), 20 epochs of batches of 16 on CPU.
SMALL: dict[str, Any] = {
    "data.image_size": 16,
    "data.channels": 1,
    "train.epochs": 20,
    "train.batch_size": 16,
    "train.device": "cpu",
    "train.progress": False,
    "test.mode": "batched",
}

#: name -> (preset, overrides on top of SMALL). The U-Net pair share a network; so do the MemAE pair.
#: Raw scores (normalise none: -PSNR, the error) rank as min-max scaled ones do and let a threshold
#: fitted on training images apply to test images; MNAD's score mixes PSNR and distance after
#: scaling, so it keeps ``global`` and its F1 at the training threshold is not meaningful.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ae": ("ae", {"encoder.widths": [8, 16, 32, 64], "scorer.normalise": "none"}),
    "mnad_recon": ("mnad_recon", {"encoder.widths": [8, 16, 32, 64], "test.update": False,
                                  "scorer.normalise": "global"}),
    "memae2d": ("memae2d", {"encoder.widths": [8, 16, 32], "memory.items": 100, "scorer.normalise": "none"}),
    "memae2d_nomem": ("memae2d", {"encoder.widths": [8, 16, 32], "memory": "none", "scorer.normalise": "none"}),
}


def run_digit(variant: str, digit: int, seeds: int, epochs: int | None, out: Path) -> list[dict[str, Any]]:
    """``memad.compare`` of one variant on ``digits:<digit>`` over ``seeds`` seeds; one record per seed.

    The deployment threshold is compare's: the 99th percentile of the scores of the normal
    training images; F1 is reported at it.
    """
    preset, extra = VARIANTS[variant]
    settings = {**SMALL, **({} if epochs is None else {"train.epochs": epochs}), **extra}
    result = memad.compare([preset], f"digits:{digit}", seeds=seeds, out=out / variant / f"digit{digit}",
                           overrides=settings, plots=False, progress=False)
    records = []
    for run in result.runs:
        m = run.metrics
        per_digit = {k: v["auroc"] for k, v in m["per_category"].items() if not v["normal"]}
        records.append({"variant": variant, "preset": preset, "digit": digit, "seed": run.seed,
                        "auroc": m["frame_auroc"], "aupr": m["aupr"], "f1": m.get("f1"),
                        "threshold": m.get("threshold"), "auroc_vs_digit": per_digit,
                        "train_seconds": m["train_seconds"], "parameters": m["params"]})
    return records


def _commit() -> str | None:
    """The checked-out commit (with ``-dirty`` when tracked files differ from it), None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "memad", "plugins", "benchmarks/digits.py"],
                               cwd=Path(__file__).parent.parent).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def torch_version() -> str:
    import torch

    return torch.__version__


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def summarise(runs: list[dict[str, Any]], variants: list[str], digits: list[int]) -> dict[str, Any]:
    """Per variant: AUROC mean and std over seeds per digit, and the mean over digits (with its std over seeds)."""
    out: dict[str, Any] = {}
    for v in variants:
        table = np.array([[r["auroc"] for r in runs if r["variant"] == v and r["digit"] == d] for d in digits])
        # Spread of the digit-mean: compute the mean over digits per seed, then its std across seeds.
        out[v] = {"per_digit_mean": table.mean(1).tolist(), "per_digit_std": table.std(1, ddof=1).tolist()
                  if table.shape[1] > 1 else [0.0] * len(digits),
                  "mean": float(table.mean()), "mean_std_over_seeds": float(table.mean(0).std(ddof=1))
                  if table.shape[1] > 1 else 0.0,
                  "train_seconds": float(np.mean([r["train_seconds"] for r in runs if r["variant"] == v])),
                  "f1": _f1_summary(v, runs, digits),
                  "parameters": next(r["parameters"] for r in runs if r["variant"] == v)}
    return out


def _f1_summary(variant: str, runs: list[dict[str, Any]], digits: list[int]) -> dict[str, float] | None:
    """Mean F1 at compare's threshold over digits, and its std over seeds (None where not meaningful)."""
    if VARIANTS[variant][1].get("scorer.normalise") != "none":
        return None
    table = np.array([[r["f1"] for r in runs if r["variant"] == variant and r["digit"] == d] for d in digits])
    return {"mean": float(table.mean()), "std_over_seeds": float(table.mean(0).std(ddof=1)) if table.shape[1] > 1
            else 0.0}


def markdown(summary: dict[str, Any], digits: list[int], seeds: int) -> str:
    head = "| variant | params | train s/run | " + " | ".join(str(d) for d in digits) + " | mean | F1@thr |"
    rule = "|" + "---|" * (len(digits) + 5)
    rows = [head, rule]
    for v, s in summary.items():
        cells = [f"{m * 100:.1f} ± {sd * 100:.1f}" for m, sd in zip(s["per_digit_mean"], s["per_digit_std"])]
        rows.append(f"| {v} | {s['parameters']:,} | {s['train_seconds']:.1f} | " + " | ".join(cells)
                    + f" | **{s['mean'] * 100:.1f} ± {s['mean_std_over_seeds'] * 100:.1f}** | "
                    + (f"{s['f1']['mean'] * 100:.1f} ± {s['f1']['std_over_seeds'] * 100:.1f} |" if s["f1"]
                       else "n/a |"))
    return "\n".join(rows) + (f"\n\nImage AUROC (%) per normal digit, mean ± std over {seeds} seeds; mean: over "
                               "digits, ± its std over seeds. F1@thr (%): at the 99th percentile of the training "
                               "images' scores (memad compare's threshold), mean over digits.\n")


def plot(summary: dict[str, Any], digits: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(summary)
    for i, (v, s) in enumerate(summary.items()):
        x = np.arange(len(digits)) + (i - (len(summary) - 1) / 2) * width
        ax.bar(x, s["per_digit_mean"], width, yerr=s["per_digit_std"], capsize=2,
               label=f"{v} (mean {s['mean'] * 100:.1f})")
    ax.set_xticks(np.arange(len(digits)), [str(d) for d in digits])
    ax.set_xlabel("normal digit")
    ax.set_ylabel("image AUROC")
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=8, ncol=len(summary), loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.set_title("One-class digits (sklearn load_digits, 16x16), mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--digits", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one CPU thread each")
    parser.add_argument("--epochs", type=int, help=f"override train.epochs (default {SMALL['train.epochs']})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(v, d, args.seeds, args.epochs, args.out / "compare") for v in args.variants for d in args.digits]
    runs: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, initializer=_one_thread) as pool:
            futures = [pool.submit(run_digit, *job) for job in jobs]
            runs = [r for f in tqdm(futures, desc="digits benchmark", unit="digit") for r in f.result()]
    else:
        for job in tqdm(jobs, desc="digits benchmark", unit="digit"):
            runs.extend(run_digit(*job))
    summary = summarise(runs, args.variants, args.digits)
    settings = {**SMALL, **({} if args.epochs is None else {"train.epochs": args.epochs})}
    meta = {"settings": settings, "variants": {v: VARIANTS[v] for v in args.variants}, "seeds": args.seeds,
            "digits": args.digits, "wall_seconds": time.perf_counter() - t0, "jobs": args.jobs,
            "commit": _commit(), "cpus": os.cpu_count(), "torch": torch_version()}
    (args.out / "digits.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
    table = markdown(summary, args.digits, args.seeds)
    (args.out / "digits.md").write_text(table)
    plot(summary, args.digits, args.out / "digits_auroc.png")
    print(table)
    print(f"{len(runs)} runs in {meta['wall_seconds'] / 60:.1f} min; results in {args.out}")


if __name__ == "__main__":
    main()
