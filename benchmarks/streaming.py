"""Ped2 on CPU: training clips/s and test frames/s with the split in memory against streamed from the frame cache.

For each repeat, alternating the two modes in one process (so both see the same machine
load): build ``--preset`` at ``data.image_size=--size`` with the CPU check's widths, open
both splits with ``data.in_memory`` true (one uint8 tensor) or false (the on-disk frame
cache, built before any timing: ``data.workers`` DataLoader workers then read the training
clips, and scoring reads the memory-mapped cache), train ``--steps`` steps and score the
test split in ``test.mode`` (``--test-mode``). Reports the best of ``--repeats`` per mode and
the ratio disk / memory. The acceptance: streamed within 15% of in memory.

Run from the repository root (about 10 minutes on 2 CPU cores with the defaults)::

    OMP_NUM_THREADS=2 python benchmarks/streaming.py --data ../shared/data/ped2 \\
        --out benchmarks/results/streaming_ped2_64.json

A smoke test: ``--steps 5 --repeats 1 --test-videos 1``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

import memad
from memad.config import make_config
from memad.data import open_split
from memad.fileio import write_json_atomic

REPO = Path(__file__).resolve().parent.parent


def measure(data: str, config: dict, mode: str, test_videos: int | None) -> dict:

    train_set = open_split(data, "training", config)  # the cache is built here, outside the timings
    test_set = open_split(data, "testing", config)
    if test_videos:
        test_set = _first_videos(test_set, test_videos, sum(test_set.lengths[:test_videos]))
    assert test_set.on_disk == train_set.on_disk == (mode == "disk"), "data.in_memory did not take effect"
    det = memad.build(config)
    summary = det.fit(train_set).fit_summary_
    clips = summary["steps_per_epoch"] * config["train"]["batch_size"]
    t0 = time.perf_counter()
    scores = det.score(test_set)
    wall = time.perf_counter() - t0
    frames = len(scores.scores)
    return {"mode": mode, "train_clips_per_s": round(clips / summary["seconds"], 2),
            "test_frames_per_s": round(frames / scores.seconds, 2), "test_frames_per_s_wall": round(frames / wall, 2),
            "train_seconds": round(summary["seconds"], 2), "test_frames": frames}


def _first_videos(videos, count: int, frames: int):
    from memad.data import VideoSet

    return VideoSet(videos.frames[:frames], videos.names[:count], videos.lengths[:count],
                    None if videos.labels is None else videos.labels[:frames],
                    None if videos.masks is None else videos.masks[:frames], videos.source, fps=None,
                    store=None if videos.store is None else videos.store.view(0, frames))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ped2"))
    parser.add_argument("--preset", default="mnad_pred")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--widths", default="[16,32,64,128]", help="encoder.widths (the CPU check's)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per measurement")
    parser.add_argument("--workers", type=int, default=2, help="data.workers for the streamed mode")
    parser.add_argument("--test-mode", default="sequential", choices=("sequential", "batched"))
    parser.add_argument("--test-videos", type=int, default=None, help="score only the first N test videos")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="memad-streaming-"))
    results: dict[str, list[dict]] = {"memory": [], "disk": []}
    try:
        for repeat in range(args.repeats):
            for mode in ("memory", "disk") if repeat % 2 == 0 else ("disk", "memory"):
                config = make_config(args.preset, {
                    "data.image_size": args.size, "encoder.widths": json.loads(args.widths), "train.epochs": 1,
                    "train.max_steps_per_epoch": args.steps, "train.device": "cpu", "train.progress": False,
                    "data.in_memory": mode == "memory", "data.cache_dir": str(cache), "data.workers": args.workers,
                    "test.mode": args.test_mode})
                row = measure(args.data, config, mode, args.test_videos)
                results[mode].append(row)
                print(json.dumps(row), flush=True)
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    best = {mode: {k: max(r[k] for r in rows) for k in ("train_clips_per_s", "test_frames_per_s")}
            for mode, rows in results.items()}
    report = {"data": args.data, "preset": args.preset, "size": args.size, "steps": args.steps,
              "workers": args.workers, "test_mode": args.test_mode, "threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "runs": results,
              "best": best,
              "disk_over_memory": {k: round(best["disk"][k] / best["memory"][k], 3) for k in best["disk"]}}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        write_json_atomic(args.out, report)
    return report


if __name__ == "__main__":
    main()
