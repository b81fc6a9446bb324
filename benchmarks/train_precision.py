"""Training speed on CPU in fp32, bf16 autocast and bf16 + channels-last, side by side in one run.

Each round trains ``--steps`` steps of each mode in turn (alternated, so a change in the machine's
load falls on every mode alike) from the same initial weights on the generated ``synthetic`` split
at each ``--sizes``; the first ``--warmup`` steps of a mode (oneDNN builds its kernels then) are not
timed. Reported: clips/s per mode and size (median over rounds) and the speed-up over fp32.

``OMP_NUM_THREADS=2 python benchmarks/train_precision.py --preset mnad_pred --sizes 256 64``
writes ``benchmarks/results/train_precision.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.environment import RESULTS, environment, write_result  # noqa: E402

import memad  # noqa: E402
from memad.data import open_split  # noqa: E402

#: The modes compared and the ``train`` fields they set.
MODES: dict[str, dict[str, Any]] = {
    "fp32": {"amp": False, "channels_last": False},
    "bf16": {"amp": True, "channels_last": False},
    "bf16+channels_last": {"amp": True, "channels_last": True},
}


class StepClock:
    """The wall time of each training step (from the end of the one before)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.clips: list[int] = []
        self._last = time.perf_counter()

    def on_step(self, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self.clips.append(int(record["clips"]))
        self._last = now


def time_mode(preset: str, size: int, mode: str, steps: int, warmup: int, split: Any) -> float:
    """clips/s of ``steps`` timed steps after ``warmup`` untimed ones."""
    det = memad.build(preset, **{"data.image_size": size, "train.device": "cpu", "train.progress": False,
                                 "train.epochs": 1, "train.max_steps_per_epoch": warmup + steps,
                                 "train.holdout": 0.0, **{f"train.{k}": v for k, v in MODES[mode].items()}})
    clock = StepClock()
    det.fit(split, callbacks=[clock])
    times, clips = clock.times[warmup:], clock.clips[warmup:]
    return sum(clips) / sum(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="mnad_pred")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "train_precision.json")
    args = ap.parse_args(argv)
    rows = []
    for size in args.sizes:
        cfg = memad.config.make_config(args.preset, {"data.image_size": size})
        split = open_split("synthetic", "training", cfg)
        speeds: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in tqdm(range(args.rounds), desc=f"{size}x{size}"):
            for mode in MODES:
                speeds[mode].append(time_mode(args.preset, size, mode, args.steps, args.warmup, split))
        base = statistics.median(speeds["fp32"])
        for mode, values in speeds.items():
            med = statistics.median(values)
            rows.append({"size": size, "mode": mode, "clips_per_s": med, "rounds": values, "speedup": med / base})
            print(f"{size:>4} {mode:>20}: {med:.3f} clips/s  x{med / base:.2f}  {['%.3f' % v for v in values]}",
                  flush=True)
    result = {"environment": environment(torch.device("cpu")), "command": " ".join(sys.argv),
              "native_cpu_bf16": memad.runtime.native_cpu_bf16(), "preset": args.preset, "steps": args.steps,
              "warmup": args.warmup, "rows": rows}
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
