"""Peak memory of training against dataset length: a 40,000-frame split against a 360-frame one.

Generates two training splits of the same scene as H.264 ``.mp4`` files in the standard
layout (``ROOT/training/videos/NN.mp4``): ``long`` with 20 videos of 2,000 frames (7.9 GB as
uint8 at 256x256x3, above the default ``data.memory_budget_gb`` of 4, so ``in_memory: auto``
sends it to the on-disk frame cache) and ``short`` with 2 videos of 180 frames (in memory).
Then runs the same ``memad train`` command on each, in this order:

1. ``long``, first run: decodes the split into the frame cache, then trains;
2. ``long``, second run: reuses the cache, then trains;
3. ``short``: in memory, then trains.

Each command trains ``--preset`` (mnad_pred) at ``data.image_size=256`` for ``--steps``
steps on CPU with ``data.workers`` DataLoader workers, under ``/usr/bin/time -v``, and its
peak resident memory is recorded three ways: GNU time's "Maximum resident set size" (the
largest single process of the tree), the highest sum of VmRSS over the process tree
(sampled every 0.2 s from /proc: the main process plus its DataLoader workers), and the
same for the main process alone. The acceptance: the long split's peak RSS at most 0.5 GB
above the short one's.

Takes about 10 minutes and 9 GB of disk on 2 CPU cores (generation ~2 min, cache build
~2-3 min, three trainings of a few steps at 256x256)::

    OMP_NUM_THREADS=2 python benchmarks/memory.py --work /tmp/memad-memory --out benchmarks/results/memory.json

``--videos``, ``--frames`` and ``--size`` shrink it for a smoke test (``--videos 2 --frames 60 --size 64
--steps 2``); ``--keep`` keeps the generated data and cache for a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def generate(root: Path, videos: int, frames: int, size: int, seed: int = 0) -> Path:
    """``videos`` .mp4 files of ``frames`` frames: a fixed textured scene, dark blobs walking across."""
    from memad.data.video_files import VideoWriter

    if (root / "done").is_file():
        return root
    rng = np.random.default_rng(seed)
    scene = rng.integers(70, 170, (size // 8, size // 8, 1), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    scene = np.repeat(scene, 3, axis=2)
    for v in range(videos):
        walkers = rng.uniform(0, size, (4, 2)), rng.choice([-1.5, 1.5], 4)
        with VideoWriter(root / "training" / "videos" / f"{v + 1:02d}.mp4", 25,
                         options={"crf": "23", "preset": "ultrafast"}) as out:
            for t in range(frames):
                frame = scene.copy()
                for (x, y), vx in zip(walkers[0], walkers[1]):
                    cx, cy = int((x + vx * t) % size), int(y)
                    frame[max(cy - size // 16, 0):cy + size // 16, max(cx - size // 32, 0):cx + size // 32] = 30
                out.write(frame)
    (root / "done").write_text("ok")
    return root


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss_kib(pid: int) -> int:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v (when present), sampling the tree's RSS; its peaks in GiB."""
    timed = ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").is_file() else cmd
    t0 = time.perf_counter()
    proc = subprocess.Popen(timed, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"tree": 0, "main": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pids = _tree(proc.pid)
            # Under /usr/bin/time the command is its child; count the command's tree, not time itself.
            main = pids[1] if timed is not cmd and len(pids) > 1 else proc.pid
            rss = {p: _rss_kib(p) for p in _tree(main)}
            peaks["tree"] = max(peaks["tree"], sum(rss.values()))
            peaks["main"] = max(peaks["main"], rss.get(main, 0))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    gnu = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    gib = 1 / 2**20
    return {"seconds": round(time.perf_counter() - t0, 1),
            "max_rss_gib_gnu_time": round(int(gnu.group(1)) * gib, 3) if gnu else None,
            "peak_tree_rss_gib": round(peaks["tree"] * gib, 3), "peak_main_rss_gib": round(peaks["main"] * gib, 3),
            "command": " ".join(cmd)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/memad-memory"), help="data, cache and runs go here")
    parser.add_argument("--preset", default="mnad_pred")
    parser.add_argument("--videos", type=int, default=20, help="videos of the long split")
    parser.add_argument("--frames", type=int, default=2000, help="frames per video of the long split")
    parser.add_argument("--size", type=int, default=256, help="frame side, on disk and data.image_size")
    parser.add_argument("--steps", type=int, default=5, help="train.max_steps_per_epoch")
    parser.add_argument("--workers", type=int, default=2, help="data.workers")
    parser.add_argument("--set", action="append", default=[], help="more --set overrides for memad train")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and cache")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work
    t0 = time.perf_counter()
    long_root = generate(work / "long", args.videos, args.frames, args.size)
    short_root = generate(work / "short", 2, 180, args.size, seed=1)
    generated = time.perf_counter() - t0
    cache = work / "cache"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def command(root: Path, name: str) -> list[str]:
        sets = [f"data.image_size={args.size}", f"train.max_steps_per_epoch={args.steps}", "train.device=cpu",
                "train.progress=false", f"data.cache_dir={cache}", f"data.workers={args.workers}", *args.set]
        # --no-calibrate: what is measured is training (calibrating would score a quarter of the long split).
        return [sys.executable, "-m", "memad", "train", args.preset, "--data", str(root), "--epochs", "1",
                "--no-calibrate", "--out", str(work / "runs" / name), *(x for s in sets for x in ("--set", s))]

    report = {"frames_long": args.videos * args.frames, "frames_short": 360, "size": args.size, "preset": args.preset,
              "steps": args.steps, "workers": args.workers, "generate_seconds": round(generated, 1), "runs": {}}
    shutil.rmtree(work / "runs", ignore_errors=True)
    for name, root in (("long_first_run_builds_cache", long_root), ("long_cache_reused", long_root),
                       ("short_in_memory", short_root)):
        report["runs"][name] = run(command(root, name), env)
        print(name, json.dumps(report["runs"][name]), flush=True)
    runs = report["runs"]
    key = "max_rss_gib_gnu_time" if runs["short_in_memory"]["max_rss_gib_gnu_time"] else "peak_tree_rss_gib"
    report["long_minus_short_gib"] = {name: round(runs[name][key] - runs["short_in_memory"][key], 3)
                                      for name in ("long_first_run_builds_cache", "long_cache_reused")}
    report["measure"] = key
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
