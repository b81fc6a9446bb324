"""Pixel metrics in bounded memory: the streamed pixel AUROC against the exact one on Ped2, and the
memory scoring takes on two test-split lengths, with every map kept (as scoring did before) and
streamed (the maps fed to the pixel metrics video by video, 16 kept for plots).

A small mnad_pred (64x64, quick-start widths) is trained briefly on Ped2, then the test split is
scored at its own length and repeated ``--repeat`` times (the same videos again, so the second split
is longer and nothing else changes). For each, the resident-set growth during scoring (sampled from
/proc every millisecond) and tracemalloc's peak are recorded, with the pixel AUROC streamed and
exact (sklearn over every kept map), its error bound, and RBDC/TBDC streamed and in memory.

So that the resident set shows what is alive rather than what glibc's allocator keeps from freed
activations, the script runs itself with ``MALLOC_MMAP_THRESHOLD_`` fixed (large blocks mapped and
unmapped, not recycled in the heap) and scores in chunks of 16 frames.

    OMP_NUM_THREADS=1 python benchmarks/pixel_memory.py --data ../shared/data/ped2  # results/pixel_memory_ped2_64.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import memad
from memad.data import VideoSet, open_split
from memad.metrics import pixel_auroc, rbdc_tbdc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.rss import PeakRSS  # noqa: E402

HERE = Path(__file__).resolve().parent
MiB = 2**20
SMALL = {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128], "train.device": "cpu", "train.progress": False,
         "train.holdout": 0.0, "test.mode": "batched", "test.chunk": 16}
#: glibc's mmap threshold, fixed: freed blocks above it go back to the OS at once.
MMAP_THRESHOLD = "131072"




def repeated(videos: VideoSet, times: int) -> VideoSet:
    """The split's videos ``times`` over (names suffixed), as one longer split."""
    if times == 1:
        return videos
    return VideoSet(torch.cat([videos.frames] * times), [f"{n}#{k}" for k in range(times) for n in videos.names],
                    videos.lengths * times, np.tile(videos.labels, times), torch.cat([videos.masks] * times),
                    source=f"{videos.source} x{times}")


def measure(det, videos: VideoSet, keep: Any) -> dict[str, Any]:
    tracemalloc.start()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        scores = det.score(videos, keep_maps=keep)
    seconds = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {"frames": len(videos), "scored": int(len(scores.scores)), "keep_maps": keep, "model_fps": scores.fps,
           "rss_growth_mib": rss.growth / MiB, "tracemalloc_peak_mib": traced / MiB, "seconds": seconds,
           "maps_kept": 0 if scores.maps is None else int(scores.maps.shape[0]),
           "pixel_auroc_streamed": scores.pixel.get("pixel_auroc"),
           "pixel_auroc_bound": scores.pixel.get("pixel_auroc_bound"),
           "rbdc_streamed": scores.pixel["regions"]["rbdc"], "tbdc_streamed": scores.pixel["regions"]["tbdc"]}
    if keep == "all":
        row["pixel_auroc_exact"] = pixel_auroc(scores.maps, scores.masks)
        row["pixel_auroc_difference"] = abs(row["pixel_auroc_exact"] - row["pixel_auroc_streamed"])
        in_memory = rbdc_tbdc(scores.maps.float().numpy(), scores.masks.numpy(), scores.video)
        row["rbdc_in_memory"], row["tbdc_in_memory"] = in_memory["rbdc"], in_memory["tbdc"]
    del scores
    return row


def main() -> int:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MMAP_THRESHOLD:  # the allocator reads it at start: run again
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD})
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "ped2"))
    p.add_argument("--steps", type=int, default=150, help="training steps (one epoch)")
    p.add_argument("--repeat", type=int, default=4, help="the longer split: the test videos this many times")
    p.add_argument("--out", type=Path, default=HERE / "results" / "pixel_memory_ped2_64.json")
    args = p.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    det = memad.build("mnad_pred", **SMALL, **{"train.epochs": 1, "train.max_steps_per_epoch": args.steps})
    t0 = time.perf_counter()
    det.fit(args.data)
    train_seconds = time.perf_counter() - t0
    test = open_split(args.data, "testing", det.config)
    det.score(test.video(0))  # first-call allocations (thread pools, the first chunks) are not per frame
    rows = []
    for times in (1, args.repeat):
        videos = repeated(test, times)
        for keep in (16, "all"):
            rows.append(measure(det, videos, keep))
            print(json.dumps(rows[-1]), flush=True)
    streamed = [r for r in rows if r["keep_maps"] != "all"]
    kept = [r for r in rows if r["keep_maps"] == "all"]
    result = {
        "data": args.data, "config": SMALL, "train_steps": args.steps, "train_seconds": train_seconds,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "malloc_mmap_threshold": MMAP_THRESHOLD,
        "rows": rows,
        "streamed_growth_difference_mib": streamed[1]["rss_growth_mib"] - streamed[0]["rss_growth_mib"],
        "all_maps_growth_difference_mib": kept[1]["rss_growth_mib"] - kept[0]["rss_growth_mib"],
        "largest_pixel_auroc_difference": max(r["pixel_auroc_difference"] for r in kept),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"pixel_memory: -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
