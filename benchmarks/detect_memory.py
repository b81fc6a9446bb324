"""Does ``memad detect`` run in constant memory? RSS between frame 500 and frame 5,000 of one video.

Trains a small ``mnad_pred`` on ``synthetic`` (64x64, narrow widths, a few hundred steps),
calibrates it, writes a 5,000-frame video of the synthetic scene (H.264, 256x256, with the
test split's anomalous events in it), then runs ``memad detect`` on it (annotated video and
HTML report on) as a subprocess while a thread samples the process's resident memory
(VmRSS from /proc) and the frames written so far (the lines of ``scores.csv``, flushed per
frame). The acceptance: growth under 50 MB between frame 500 and frame 5,000.

    OMP_NUM_THREADS=2 python benchmarks/detect_memory.py --out benchmarks/results/detect_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.data.video_files import VideoWriter
from memad.fileio import write_json_atomic


def make_video(path: Path, frames: int, size: int) -> Path:
    """The synthetic test videos one after another, repeated to ``frames`` frames, written frame by frame."""
    test = make_synthetic("testing", (64, 64), 3, 64, SyntheticSpec(test_videos=8, frames_per_video=60, seed=3))
    source = test.frames.permute(0, 2, 3, 1).numpy()
    with VideoWriter(path, 25) as writer:
        for k in range(frames):
            writer.write(np.asarray(Image.fromarray(source[k % len(source)]).resize((size, size), Image.BILINEAR)))
    return path


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return max(sum(1 for _ in fh) - 1, 0)
    except OSError:
        return 0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/memad-detect-memory"))
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--size", type=int, default=256, help="side of the video's frames")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the small model")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.work / "pred.pt"
    if not ckpt.is_file():
        det = memad.build("mnad_pred", data={"image_size": 64}, encoder={"widths": [16, 32, 64, 128]},
                          train={"epochs": 1, "max_steps_per_epoch": args.steps, "progress": False})
        det.fit("synthetic")
        det.calibrate("synthetic")
        det.save(ckpt)
    video = args.work / "long.mp4"
    if not video.is_file():
        make_video(video, args.frames, args.size)
    out = args.work / "detect"
    cmd = [sys.executable, "-m", "memad", "detect", str(ckpt), str(video), "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    samples: list[tuple[float, int, float]] = []

    def sample() -> None:
        while proc.poll() is None:
            rss = rss_mib(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, lines(out / "scores.csv"), rss))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"memad detect failed ({proc.returncode}): {err[-2000:]}")

    def rss_at(frame: int) -> float:
        return max(r for _, n, r in samples if n <= frame and n >= frame - 100) if any(
            frame - 100 <= n <= frame for _, n, _ in samples) else float("nan")

    scored = max(n for _, n, _ in samples)
    at_500, at_end = rss_at(500), max(r for _, n, r in samples if n >= scored - 100)
    report = {"command": " ".join(cmd), "frames": args.frames, "video_size": args.size, "frames_scored": scored,
              "seconds": round(time.perf_counter() - t0, 1), "rss_mib_at_frame_500": round(at_500, 1),
              "rss_mib_at_end": round(at_end, 1), "growth_mib": round(at_end - at_500, 1),
              "peak_rss_mib": round(max(r for _, _, r in samples), 1),
              "samples": [(round(t, 1), n, round(r, 1)) for t, n, r in samples[::10]]}
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    if args.out:
        write_json_atomic(args.out, report)
    return report


if __name__ == "__main__":
    main()
