"""One-class benchmark on scikit-learn's handwritten digits, small enough for a CPU in minutes.

For each digit d: train on the training images of d only (``--data digits:d``, the fixed
stratified 60/40 split of ``memad.data.images``), test on all held-out images (d normal,
the other nine digits anomalous), image AUROC. Every variant gets the same small network
sizes (listed in ``SMALL`` and ``VARIANTS``), 3 seeds, and the image settings of
docs/images.md (global score normalisation, no test-time memory writes).

    OMP_NUM_THREADS=1 python benchmarks/digits.py            # all variants, digits 0-9, seeds 0-2
    python benchmarks/digits.py --variants ae mnad_recon --digits 3 --seeds 1

Writes ``benchmarks/results/digits.json`` (every run), ``digits.md`` (the table of
docs/benchmarks.md) and ``digits_auroc.png`` (AUROC per digit, mean and spread).
"""

from __future__ import annotations

import argparse
import json
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
    "scorer.normalise": "global",
}

#: name -> (preset, overrides on top of SMALL). The U-Net pair share a network; so do the MemAE pair.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ae": ("ae", {"encoder.widths": [8, 16, 32, 64]}),
    "mnad_recon": ("mnad_recon", {"encoder.widths": [8, 16, 32, 64], "test.update": False}),
    "memae2d": ("memae2d", {"encoder.widths": [8, 16, 32], "memory.items": 100}),
    "memae2d_nomem": ("memae2d", {"encoder.widths": [8, 16, 32], "memory": "none"}),
}


def run_one(variant: str, digit: int, seed: int, epochs: int | None = None) -> dict[str, Any]:
    """Train one variant on one digit with one seed; returns its image AUROC and timings."""
    preset, extra = VARIANTS[variant]
    settings = {**SMALL, **({} if epochs is None else {"train.epochs": epochs})}
    det = memad.build(preset, **{**settings, **extra, "train.seed": seed})
    data = f"digits:{digit}"
    t0 = time.perf_counter()
    det.fit(data)
    train_s = time.perf_counter() - t0
    metrics = det.evaluate(data)
    per_digit = {k: v["auroc"] for k, v in metrics["per_category"].items() if not v["normal"]}
    return {"variant": variant, "preset": preset, "digit": digit, "seed": seed, "auroc": metrics["frame_auroc"],
            "aupr": metrics["aupr"], "auroc_vs_digit": per_digit, "train_seconds": train_s,
            "parameters": det.count_parameters()["total"]}


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
                  "parameters": next(r["parameters"] for r in runs if r["variant"] == v)}
    return out


def markdown(summary: dict[str, Any], digits: list[int], seeds: int) -> str:
    head = "| variant | params | train s/run | " + " | ".join(str(d) for d in digits) + " | mean |"
    rule = "|" + "---|" * (len(digits) + 4)
    rows = [head, rule]
    for v, s in summary.items():
        cells = [f"{m * 100:.1f} ± {sd * 100:.1f}" for m, sd in zip(s["per_digit_mean"], s["per_digit_std"])]
        rows.append(f"| {v} | {s['parameters']:,} | {s['train_seconds']:.1f} | " + " | ".join(cells)
                    + f" | **{s['mean'] * 100:.1f} ± {s['mean_std_over_seeds'] * 100:.1f}** |")
    return "\n".join(rows) + f"\n\nImage AUROC (%), mean ± std over {seeds} seeds.\n"


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
    jobs = [(v, d, s) for v in args.variants for d in args.digits for s in range(args.seeds)]
    runs = []
    t0 = time.perf_counter()
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, initializer=_one_thread) as pool:
            futures = [pool.submit(run_one, *job, args.epochs) for job in jobs]
            runs = [f.result() for f in tqdm(futures, desc="digits benchmark")]
    else:
        for v, d, s in tqdm(jobs, desc="digits benchmark"):
            runs.append(run_one(v, d, s, args.epochs))
    summary = summarise(runs, args.variants, args.digits)
    settings = {**SMALL, **({} if args.epochs is None else {"train.epochs": args.epochs})}
    meta = {"settings": settings, "variants": {v: VARIANTS[v] for v in args.variants}, "seeds": args.seeds,
            "digits": args.digits, "wall_seconds": time.perf_counter() - t0}
    (args.out / "digits.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
    table = markdown(summary, args.digits, args.seeds)
    (args.out / "digits.md").write_text(table)
    plot(summary, args.digits, args.out / "digits_auroc.png")
    print(table)
    print(f"{len(runs)} runs in {meta['wall_seconds'] / 60:.1f} min; results in {args.out}")


if __name__ == "__main__":
    main()
