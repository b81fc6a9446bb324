"""CPU deployment speed: mnad_pred at 256x256, one frame at a time with the memory's test-time write
(the sequential test, as ``memad detect`` and ``Detector.stream`` run it), per engine and setting.

Options, measured interleaved (A, B, C, A, B, C...) in one process so that a shared machine's load
falls on all alike: PyTorch fp32 (the default layout), PyTorch channels-last, PyTorch bf16 autocast
(native on CPUs with avx512_bf16 or AMX, emulated and slow elsewhere: the CPU flags are recorded),
bf16 autocast with channels-last, TorchScript, ONNX Runtime fp32 (the exported per-frame step of
:mod:`memad.scoring.export`), and memad's default scoring step (``memad_default``: what ``memad detect``
and ``Detector.stream`` run, with ``test.amp`` and ``test.channels_last`` at "auto").
Each option: ``--warmup`` untimed steps, then ``--frames`` timed steps, ``--repeats`` rounds; the
best round's frames/s is reported (the least disturbed). Weights are random: speed does not depend
on them, and the score equality of the engines is tested separately (tests/test_export.py).

    OMP_NUM_THREADS=2 python benchmarks/cpu_deploy.py --threads 2 --out benchmarks/results/cpu_deploy.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch
from benchlib.environment import git_state

import memad
from memad import runtime
from memad.fileio import write_json_atomic
from memad.scoring.export import StepModule
from memad.scoring.step import default_map_hw


def cpu_flags() -> list[str]:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted(f for f in line.split() if f.startswith(("avx512", "amx", "avx2", "fma")))


def torch_step(det, clip: torch.Tensor, state, channels_last: bool = False, bf16: bool = False):
    step = StepModule(det.network, default_map_hw(det.config))
    if channels_last:
        det.to(memory_format=torch.channels_last)

    def run() -> None:
        with torch.no_grad(), runtime.autocast(torch.device("cpu"), bf16):
            step(clip, *state)

    return run


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", nargs="+", default=["torch_fp32", "torch_channels_last", "torchscript",
                                                          "onnxruntime", "torch_bf16", "torch_bf16_channels_last",
                                                          "memad_default"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    det = memad.build("mnad_pred", data={"image_size": args.size}).eval()
    clip = torch.randint(0, 256, (1, det.clip_length, 3, args.size, args.size), dtype=torch.uint8)
    state = [b.clone() for b in det.memory.buffers()]
    runs = {}
    for name in args.options:
        twin = copy.deepcopy(det)
        if name == "torch_fp32":
            runs[name] = torch_step(twin, clip, state)
        elif name == "torch_channels_last":
            runs[name] = torch_step(twin, clip, state, channels_last=True)
        elif name == "torch_bf16":
            runs[name] = torch_step(twin, clip, state, bf16=True)
        elif name == "torch_bf16_channels_last":
            runs[name] = torch_step(twin, clip, state, channels_last=True, bf16=True)
        elif name == "memad_default":  # what memad detect and Detector.stream run: test.amp/channels_last "auto"
            step = twin.make_step(maps=True, device=torch.device("cpu"))
            runs[name] = lambda s=step: s(clip)
        elif name == "torchscript":
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                traced = torch.jit.freeze(torch.jit.trace(StepModule(twin.network, default_map_hw(det.config)),
                                                          (clip, *state), check_trace=False).eval())
            runs[name] = lambda t=traced: t(clip, *state)
        elif name == "onnxruntime":
            import contextlib
            import io

            import onnxruntime as ort

            path = Path("/tmp/memad_cpu_deploy.onnx")
            with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                step = StepModule(twin.network, default_map_hw(det.config))
                program = torch.onnx.export(step, (clip, *state), dynamo=True)
                program.save(str(path))
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = dict(zip([i.name for i in session.get_inputs()], [clip.numpy(), *[s.numpy() for s in state]]))
            runs[name] = lambda s=session, f=feed: s.run(None, f)
        else:
            raise SystemExit(f"unknown option {name!r}")
    for run in runs.values():
        for _ in range(args.warmup):
            run()
    rounds: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():  # interleaved: the machine's load falls on every option alike
            t0 = time.perf_counter()
            for _ in range(args.frames):
                run()
            rounds[name].append(args.frames / (time.perf_counter() - t0))
    commit = git_state()["commit"]
    report = {"preset": "mnad_pred", "size": args.size, "threads": args.threads, "frames": args.frames,
              "repeats": args.repeats, "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "torch": torch.__version__, "commit": commit, "load_average": os.getloadavg(),
              "fps_best": {k: round(max(v), 3) for k, v in rounds.items()},
              "fps_rounds": {k: [round(x, 3) for x in v] for k, v in rounds.items()}}
    print(json.dumps({k: report[k] for k in ("fps_best", "load_average", "cpu_flags")}, indent=1))
    if args.out:
        write_json_atomic(args.out, report)
    return report


if __name__ == "__main__":
    main()
