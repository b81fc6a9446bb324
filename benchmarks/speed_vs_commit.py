"""Ped2 at 64x64 on CPU: training clips/s and sequential test frames/s of this tree against another
commit's, the split in memory, alternated run by run so both see the same machine load.

The other commit is given as a folder holding its ``memad`` and ``memad_plugins`` packages (for
example a ``git worktree`` with ``plugins`` linked as ``memad_plugins``); each run is a subprocess
with that folder first on its import path.

    git worktree add /tmp/old ed948d2 && mkdir /tmp/oldpkg && ln -s /tmp/old/memad /tmp/oldpkg/memad \\
        && ln -s /tmp/old/plugins /tmp/oldpkg/memad_plugins
    OMP_NUM_THREADS=1 python benchmarks/speed_vs_commit.py --other /tmp/oldpkg --out benchmarks/results/speed_vs_ed948d2.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RUN = r'''
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
if os.environ.get("MEMAD_OTHER"):  # this tree is installed editable: its import hook would win over PYTHONPATH
    sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, os.environ["MEMAD_OTHER"])
import memad
from memad.data import VideoSet
data, steps, videos, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
over = {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128], "train.epochs": 1,
        "train.max_steps_per_epoch": steps, "train.progress": False, "train.device": "cpu"}
if new:
    over.update({"train.holdout": 0.0, "data.in_memory": True})
det = memad.build("mnad_pred", **over)
from memad.data import open_split
train = open_split(data, "training", det.config)
test = open_split(data, "testing", det.config)
t0 = time.perf_counter(); det.fit(train); train_s = time.perf_counter() - t0
sub = VideoSet(test.frames[:sum(test.lengths[:videos])], test.names[:videos], test.lengths[:videos], source="sub")
scores = det.score(sub)
print(json.dumps({"train_clips_per_s": steps * 4 / train_s, "test_frames_per_s": scores.fps}))
'''


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="folder with the other commit's memad packages")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ped2"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"this": [], "other": []}
    for _ in range(args.repeats):
        for name in ("other", "this"):
            env = dict(os.environ)
            if name == "other":
                env["MEMAD_OTHER"] = str(args.other)
            out = subprocess.run([sys.executable, "-c", RUN, args.data, str(args.steps), str(args.videos),
                                  "1" if name == "this" else "0"], capture_output=True, text=True, env=env)
            if out.returncode:
                raise SystemExit(f"{name}: {out.stderr[-2000:]}")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {k: {m: max(r[m] for r in v) for m in ("train_clips_per_s", "test_frames_per_s")} for k, v in runs.items()}
    report = {"other": str(args.other), "steps": args.steps, "videos": args.videos, "runs": runs, "best": best,
              "this_over_other": {m: round(best["this"][m] / best["other"][m], 3) for m in best["this"]},
              "load_average": os.getloadavg()}
    print(json.dumps(report, indent=1))
    if args.out:
        from memad.fileio import write_json_atomic

        write_json_atomic(args.out, report)
    return report


if __name__ == "__main__":
    main()
