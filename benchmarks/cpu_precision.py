"""Ped2 frame AUROC of test-time precision and layout on CPU: the same fp32-trained weights scored
sequentially in fp32, in channels-last, and in bf16 autocast with channels-last (``test.amp``,
``test.channels_last``): the check that the fastest CPU setting costs at most 0.3 AUROC points.

Per seed, ``bench.py``'s CPU small-scale protocol (64x64, quick-start widths, 2 epochs of at most 400
steps, every training video trained on, fp32 training), then one sequential test pass per setting
from the same trained memory. Reports each pass's frame AUROC (percent), its change against fp32
and its frames/s (64x64: indicative only; the 256x256 speed is ``cpu_deploy.py``'s).

    OMP_NUM_THREADS=2 python benchmarks/cpu_precision.py --seeds 2 --out benchmarks/results/cpu_precision_ped2.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
from pathlib import Path

import torch
from benchlib.environment import git_state

import memad
from memad import runtime
from memad.config import make_config
from memad.data import open_split
from memad.fileio import write_json_atomic

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"fp32": {"amp": False, "channels_last": False},
            "channels_last": {"amp": False, "channels_last": True},
            "bf16_channels_last": {"amp": True, "channels_last": True}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ped2"))
    parser.add_argument("--preset", default="mnad_pred")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400, help="train.max_steps_per_epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = []
    for seed in range(args.seeds):
        config = make_config(args.preset, {
            "data.image_size": args.size, "encoder.widths": [16, 32, 64, 128], "train.epochs": args.epochs,
            "train.max_steps_per_epoch": args.steps, "train.holdout": 0.0, "train.device": "cpu",
            "train.amp": False, "train.seed": seed})
        det = memad.build(config)
        det.fit(open_split(args.data, "training", config))
        test = open_split(args.data, "testing", config)
        trained = copy.deepcopy(det.memory.state_dict())
        row = {"seed": seed}
        for name, setting in SETTINGS.items():
            det.memory.load_state_dict(trained)  # each pass starts from the trained memory
            det.config["test"].update(setting)
            scores = det.score(test)
            metrics = scores.metrics()
            row[name] = {"frame_auroc": 100 * metrics["frame_auroc"], "fps": metrics["fps"]}
            print(f"seed {seed} {name}: AUROC {row[name]['frame_auroc']:.2f}, {metrics['fps']:.1f} frames/s",
                  flush=True)
        for name in SETTINGS:
            row[name]["auroc_minus_fp32"] = row[name]["frame_auroc"] - row["fp32"]["frame_auroc"]
        runs.append(row)
    commit = git_state()["commit"]
    report = {"preset": args.preset, "size": args.size, "seeds": args.seeds, "steps": args.steps,
              "epochs": args.epochs, "threads": torch.get_num_threads(), "native_cpu_bf16": runtime.native_cpu_bf16(),
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "commit": commit,
              "runs": runs,
              "mean_change": {n: sum(r[n]["auroc_minus_fp32"] for r in runs) / len(runs) for n in SETTINGS}}
    print(json.dumps(report["mean_change"], indent=1))
    if args.out:
        write_json_atomic(args.out, report)
    return report


if __name__ == "__main__":
    main()
