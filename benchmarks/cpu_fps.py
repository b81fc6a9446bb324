"""Test-time frames/s per preset on CPU, at 256x256 (the presets' widths) and at the quick-start size.

No training: speed does not depend on the weights, so each preset is built untrained
(seed 0) and scores one synthetic video (smooth moving blobs, uint8) in each test mode.
``sequential`` is one frame per pass with a memory write after each (the paper); presets whose
memory does not write at test time run in chunks whatever the mode, so only ``batched`` is
timed for them. Timings are model time only (frames already in memory), as
:attr:`memad.scoring.runner.Scores.seconds` measures them, after one untimed warm-up pass; the
fastest of ``--repeats`` (2) timed passes counts, since on a shared machine slower passes
measure the other load.

    python benchmarks/cpu_fps.py                       # 1 and 2 threads, all six presets, both sizes
    python benchmarks/cpu_fps.py --threads 2 --presets mnad_pred --frames-full 1

Writes ``benchmarks/results/cpu_fps.json`` (every measurement, device, torch, commit, load
average), ``cpu_fps.md`` (the table of docs/benchmarks.md) and ``cpu_fps.png``.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from benchlib.environment import environment
from tqdm.auto import tqdm

import memad
from memad.data import VideoSet
from memad.fileio import write_json_atomic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PRESETS = ("mnad_pred", "mnad_recon", "ae", "unet_pred", "memae", "memae2d")
#: The quick-start size (README): 64x64 frames, a quarter of the widths.
QUICK: dict[str, dict[str, Any]] = {
    "mnad_pred": {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128]},
    "mnad_recon": {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128]},
    "ae": {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128]},
    "unet_pred": {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128]},
    "memae": {"data.image_size": 64, "encoder.widths": [16, 32, 64, 64]},
    "memae2d": {"data.image_size": 64, "encoder.widths": [16, 32, 64, 64]},
}
#: The official MNAD code's prediction model on 2 CPU cores (the figure quoted in issue 5).
OFFICIAL_PRED_FPS_2_CORES = 1.3


def synthetic_video(n: int, channels: int, size: int, seed: int = 0) -> VideoSet:
    """``n`` frames of two Gaussian blobs drifting over a gradient, uint8 ``(n, C, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    start, speed = torch.rand(2, 2, generator=g), (torch.rand(2, 2, generator=g) - 0.5) * 0.05
    frames = []
    for t in range(n):
        img = 0.3 + 0.2 * xx
        for (cy, cx), (vy, vx) in zip(start.tolist(), speed.tolist()):
            img = img + 0.5 * torch.exp(-(((yy - cy - vy * t) ** 2 + (xx - cx - vx * t) ** 2) / 0.01))
        frames.append(img.clamp(0, 1))
    video = (torch.stack(frames)[:, None].expand(n, channels, size, size) * 255).round().to(torch.uint8)
    return VideoSet(video.contiguous(), ["synthetic"], [n], source=f"synthetic {size}x{size}")


def measure(preset: str, size_name: str, overrides: dict[str, Any], mode: str, frames: int,
            repeats: int = 2) -> dict[str, Any]:
    """Frames/s of the untrained ``preset`` scoring ``frames`` frames in ``mode`` (chunk = ``frames``).

    The fastest of ``repeats`` passes counts: on a shared machine the slower ones measure the other load.
    """
    det = memad.build(preset, **{**overrides, "train.device": "cpu", "test.mode": mode, "test.chunk": frames})
    clip = det.clip_length
    size = det.config["data"]["image_size"]
    channels = det.config["data"]["channels"]
    video = synthetic_video(clip - 1 + frames, channels, size)
    det.score(VideoSet(video.frames[:clip], ["warm-up"], [clip]))  # one frame: first-call allocations
    seconds = [det.score(video).seconds for _ in range(repeats)]
    n = frames
    return {"preset": preset, "size": size_name, "image_size": size, "widths": det.config["encoder"].get("widths"),
            "channels": channels, "clip_frames": clip, "mode": mode, "frames": n,
            "chunk": 1 if mode == "sequential" else frames, "seconds": min(seconds), "fps": n / min(seconds),
            "seconds_per_pass": seconds,
            "parameters": det.count_parameters()["total"],
            "memory_writes_at_test": bool(det.config["test"]["update"] and det.memory.writes)}


def _fps(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(rows: Sequence[dict[str, Any]], header: dict[str, Any]) -> str:
    """Markdown: one row per preset and thread count, frames/s per size and mode."""
    by = {(r["preset"], r["threads"], r["size"], r["mode"]): r for r in rows}
    keys = list(dict.fromkeys((r["preset"], r["threads"]) for r in rows))

    def cell(preset: str, threads: int, size: str, mode: str) -> str:
        r = by.get((preset, threads, size, mode))
        if r is None:
            return "= batched" if mode == "sequential" and (preset, threads, size, "batched") in by else "n/a"
        return _fps(r["fps"])

    shapes = {}
    for r in rows:
        shapes.setdefault(r["preset"], {})[r["size"]] = f"{r['image_size']}px {r['widths']}"
    env = header["environment"]
    frames = {r["size"]: r["frames"] for r in rows}
    lines = [f"Test frames/s on {env['cpu']} ({env['cpu_count']} cores), torch {env['torch']}, commit "
             f"{(env['git']['commit'] or 'unknown')[:8]}: untrained weights, synthetic frames, model time only, "
             f"the fastest of {header['repeats']} passes of {frames.get('full', '-')} frames at 256x256 and "
             f"{frames.get('quick', '-')} at the quick-start size (batched: one chunk of them). 1-minute load "
             f"average: {header['load_average']}. \"= batched\": the memory does not write at test time, so "
             "both modes run in chunks.", "",
             "| preset | threads | 256x256 sequential | 256x256 batched | quick-start sequential | quick-start batched "
             "| sizes (px, encoder widths) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for preset, threads in keys:
        sizes = "; ".join(f"{'full' if k == 'full' else 'quick'}: {v}" for k, v in shapes[preset].items())
        lines.append(f"| {preset} | {threads} | {cell(preset, threads, 'full', 'sequential')} "
                     f"| {cell(preset, threads, 'full', 'batched')} | {cell(preset, threads, 'quick', 'sequential')} "
                     f"| {cell(preset, threads, 'quick', 'batched')} | {sizes} |")
    lines += ["", f"For comparison: the official MNAD prediction model runs at about {OFFICIAL_PRED_FPS_2_CORES} "
              "frames/s on 2 CPU cores (the project's reference figure, measured on another machine)."]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Bars of frames/s (log scale) per preset, one panel per thread count: each size and mode a colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(dict.fromkeys(r["preset"] for r in rows))
    thread_counts = sorted({r["threads"] for r in rows})
    series = [("full", "sequential", "tab:blue"), ("full", "batched", "tab:cyan"),
              ("quick", "sequential", "tab:red"), ("quick", "batched", "tab:orange")]
    fig, axes = plt.subplots(1, len(thread_counts), figsize=(6 * len(thread_counts), 3.8), sharey=True,
                             constrained_layout=True, squeeze=False)
    width = 0.8 / len(series)
    for ax, threads in zip(axes[0], thread_counts):
        for j, (size, mode, colour) in enumerate(series):
            xs, ys = [], []
            for i, preset in enumerate(presets):
                r = next((r for r in rows if (r["preset"], r["threads"], r["size"], r["mode"])
                          == (preset, threads, size, mode)), None)
                if r is not None:
                    xs.append(i + (j - (len(series) - 1) / 2) * width)
                    ys.append(r["fps"])
            label = f"{'256x256' if size == 'full' else 'quick-start 64x64'}, {mode}"
            ax.bar(xs, ys, width=width, color=colour, label=label)
        ax.axhline(OFFICIAL_PRED_FPS_2_CORES, color="k", ls="--", lw=1)
        ax.text(len(presets) - 0.6, OFFICIAL_PRED_FPS_2_CORES * 1.15, "official pred, 2 cores", fontsize=7, ha="right")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.05)
        ax.set_xticks(range(len(presets)))
        ax.set_xticklabels(presets, fontsize=8)
        ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}", fontsize=9)
    axes[0][0].set_ylabel("test frames/s (log)")
    fig.suptitle(title, fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=4, loc="outside lower center", frameon=False)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS, metavar="PRESET")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="torch.set_num_threads values, each measured (default 1 2)")
    p.add_argument("--frames-full", type=int, default=2, help="frames timed per mode at 256x256 (default 2)")
    p.add_argument("--frames-quick", type=int, default=32, help="frames timed per mode at the quick size (default 32)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes per measurement, the fastest counts")
    p.add_argument("--sizes", nargs="+", default=["full", "quick"], choices=["full", "quick"])
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    for name in ("frames_full", "frames_quick", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(args, name)}")
    if min(args.threads) < 1:
        p.error(f"--threads: expected integers >= 1, got {args.threads}")
    load_before = os.getloadavg()
    jobs = []
    for preset in args.presets:
        for size in args.sizes:
            overrides = {} if size == "full" else QUICK[preset]
            frames = args.frames_full if size == "full" else args.frames_quick
            writes = memad.build(preset, **{**overrides, "train.device": "cpu"}).memory.writes
            for mode in ("sequential", "batched") if writes else ("batched",):
                jobs.append((preset, size, overrides, mode, frames))
    rows = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs) * len(args.threads), desc="cpu fps", unit="measurement", dynamic_ncols=True)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for preset, size, overrides, mode, frames in jobs:
            bar.set_postfix_str(f"{preset} {size} {mode}, {threads} threads")
            rows.append({**measure(preset, size, overrides, mode, frames, args.repeats), "threads": threads})
            bar.update(1)
    bar.close()
    header = {
        "benchmark": "cpu_fps", "threads": args.threads, "repeats": args.repeats,
        "command_line": shlex.join(["python", "benchmarks/cpu_fps.py", *(sys.argv[1:] if argv is None else argv)]),
        "environment": environment(torch.device("cpu")),
        # The machine may be shared: the 1-minute load says how much else ran meanwhile.
        "load_average": f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after",
        "seconds": time.perf_counter() - t0, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "official_pred_fps_2_cores": OFFICIAL_PRED_FPS_2_CORES,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "cpu_fps.json", {**header, "rows": rows})
    md = table(rows, header)
    (args.out / "cpu_fps.md").write_text(md)
    env = header["environment"]
    plot(rows, args.out / "cpu_fps.png", f"memad test speed, {env['cpu']} ({env['cpu_count']} cores), "
         f"torch {env['torch']}; no sequential bar: the memory does not write at test time")
    print(md)
    if not all(math.isfinite(r["fps"]) for r in rows):
        print("cpu_fps: some timings are not finite", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
