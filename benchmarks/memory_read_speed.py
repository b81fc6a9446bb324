"""Scoring speed of a MemAE-memory preset (ML-MemAE-SC by default) with the chunked no-grad read
against the dense one, on CPU, in one run.

The same detector (untrained, seed 0, or ``--checkpoint``) scores the first ``--videos`` videos of
the synthetic test split twice per repeat, alternating ``MemAEMemory.fast_read = False`` (the
dense form, :func:`sparse_address` then ``w @ items``, as before the chunked read) and ``True``
(:func:`sparse_read`), at each ``--threads`` count. Timings are model time only
(:attr:`memad.scoring.runner.Scores.seconds`, frames already in memory) after one untimed pass of
each; frames/s is the fastest of ``--repeats`` passes (slower ones measure other load on a shared
machine), the median is recorded too. The per-frame scores of the two reads are compared: the
largest absolute difference of the scores and of each raw signal (``psnr``, ``mse``).

    OMP_NUM_THREADS=2 python benchmarks/memory_read_speed.py                 # ml_memae_sc, 64x64, 2 and 1 threads
    OMP_NUM_THREADS=2 python benchmarks/memory_read_speed.py --videos 1 --repeats 1 --out /tmp/x.json

Writes ``benchmarks/results/memory_read_speed.json``. On a machine where other processes hold the
cores, OpenMP threads that spin at each barrier slow the chunked read's many small operations most:
``OMP_WAIT_POLICY=PASSIVE`` (recorded in the file) shows the two-thread figure without that.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

import memad
from memad.data import VideoSet, open_split
from memad.fileio import write_json_atomic
from memad_plugins.memae.memory import MemAEMemory

HERE = Path(__file__).resolve().parent


def _bench_helpers():
    """environment() of bench.py (the same record in every results file)."""
    spec = importlib.util.spec_from_file_location("memad_bench_script", HERE / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_fast_read(detector, fast: bool) -> int:
    """Switch every MemAE memory of ``detector`` to the chunked (True) or dense (False) read; how many."""
    memories = [m for m in detector.modules() if isinstance(m, MemAEMemory)]
    for m in memories:
        m.fast_read = fast
    return len(memories)


def first_videos(videos: VideoSet, n: int) -> VideoSet:
    """The first ``n`` videos of ``videos`` (with their labels)."""
    n = min(n, len(videos.lengths))
    frames = sum(videos.lengths[:n])
    labels = None if videos.labels is None else videos.labels[:frames]
    return VideoSet(videos.frames[:frames], videos.names[:n], videos.lengths[:n], labels, source=videos.source)


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        out[key] = yaml.safe_load(value)
    return out


def measure(detector, videos: VideoSet, threads: int, repeats: int) -> dict[str, Any]:
    """Dense and chunked scoring of ``videos`` at ``threads`` threads, alternated ``repeats`` times."""
    torch.set_num_threads(threads)
    seconds: dict[str, list[float]] = {"dense": [], "chunked": []}
    scores = {}
    for fast in (False, True):  # untimed: first-call allocations, oneDNN primitive caches
        set_fast_read(detector, fast)
        detector.score(first_videos(videos, 1))
    for _ in range(repeats):
        for name, fast in (("dense", False), ("chunked", True)):
            set_fast_read(detector, fast)
            result = detector.score(videos)
            seconds[name].append(result.seconds)
            scores[name] = result
    n = len(scores["dense"].scores)
    a, b = scores["dense"], scores["chunked"]
    fps = {k: n / min(v) for k, v in seconds.items()}
    return {
        "threads": threads, "frames": n,
        "fps_dense": fps["dense"], "fps_chunked": fps["chunked"], "speedup": fps["chunked"] / fps["dense"],
        "fps_dense_median": n / statistics.median(seconds["dense"]),
        "fps_chunked_median": n / statistics.median(seconds["chunked"]),
        "seconds_dense": seconds["dense"], "seconds_chunked": seconds["chunked"],
        "max_abs_score_diff": float(np.abs(a.scores - b.scores).max()),
        "max_abs_signal_diff": {k: float(np.abs(a.stats.signals[k] - b.stats.signals[k]).max())
                                for k in a.stats.signals},
        "scores_identical": bool(np.array_equal(a.scores, b.scores)),
        "frame_auroc_dense": a.metrics()["frame_auroc"], "frame_auroc_chunked": b.metrics()["frame_auroc"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="ml_memae_sc")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="config overrides (default: data.image_size=64)")
    p.add_argument("--checkpoint", type=Path, default=None, help="score this saved detector instead (its config)")
    p.add_argument("--videos", type=int, default=2, help="videos of the synthetic test split scored (60 frames each)")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch.set_num_threads values")
    p.add_argument("--repeats", type=int, default=3, help="alternated timed passes per read, the fastest counts")
    p.add_argument("--out", type=Path, default=HERE / "results" / "memory_read_speed.json")
    args = p.parse_args(argv)
    if args.videos < 1 or args.repeats < 1 or min(args.threads) < 1:
        p.error("--videos, --repeats and --threads: expected integers >= 1")
    overrides = _parse_set(["data.image_size=64"] if args.set is None else args.set)
    if args.checkpoint is not None:
        detector = memad.load(args.checkpoint, device="cpu")
    else:
        detector = memad.build(args.preset, **{**overrides, "train.device": "cpu"})
    if set_fast_read(detector, True) == 0:
        p.error(f"{args.preset}: no MemAE memory to switch")
    videos = first_videos(open_split("synthetic", "testing", detector.config), args.videos)
    helpers = _bench_helpers()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = [measure(detector, videos, t, args.repeats) for t in args.threads]
    record = {
        "benchmark": "memory_read_speed", "preset": args.preset,
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "overrides": overrides if args.checkpoint is None else {},
        "image_size": detector.config["data"]["image_size"], "memory": detector.config["memory"],
        "test": detector.config["test"], "videos": len(videos.lengths), "repeats": args.repeats,
        "command_line": shlex.join(["python", "benchmarks/memory_read_speed.py",
                                    *(sys.argv[1:] if argv is None else argv)]),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "environment": helpers.environment(torch.device("cpu")),
        "load_average": f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after",
        "seconds": time.perf_counter() - t0, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, record)
    for r in rows:
        print(f"{r['threads']} thread(s): dense {r['fps_dense']:.2f} frames/s, chunked {r['fps_chunked']:.2f} "
              f"frames/s ({r['speedup']:.2f}x); max |score diff| {r['max_abs_score_diff']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
