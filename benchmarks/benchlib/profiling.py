"""torch.profiler tables of a few training steps and test frames of one preset (``bench.py --profile``)."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

import memad
from memad.data import SplitCache, VideoSet

from .environment import _sync, environment
from .ped2 import MODES


def _profile_table(prof, device: torch.device, rows: int) -> tuple[str, dict[str, float]]:
    """The top ops by self time on the device (CPU on CPU) and the total self times."""
    from torch.autograd import DeviceType

    events = prof.key_averages()
    on_cuda = device.type == "cuda"
    # torch >= 2.4 names device times "device"; older versions "cuda".
    device_attr = "self_device_time_total" if all(hasattr(e, "self_device_time_total") for e in events) \
        else "self_cuda_time_total"
    sort = device_attr if on_cuda else "self_cpu_time_total"
    table = events.table(sort_by=sort, row_limit=rows, max_name_column_width=60)
    cpu = [e for e in events if getattr(e, "device_type", DeviceType.CPU) == DeviceType.CPU]
    kernels = [e for e in events if getattr(e, "device_type", DeviceType.CPU) != DeviceType.CPU]
    totals = {"self_cpu_seconds": sum(e.self_cpu_time_total for e in cpu) / 1e6}
    if on_cuda:
        # Kernel rows only: an operator's own device time repeats that of the kernels it launched.
        totals["self_device_seconds"] = sum(getattr(e, device_attr) for e in kernels) / 1e6
    return table, totals


def profile_preset(preset: str, config: dict[str, Any], splits: SplitCache, device: torch.device, *,
                   train_steps: int = 20, test_frames: int = 64, rows: int = 25) -> str:
    """Markdown: torch.profiler top-op tables for ``train_steps`` training steps and ``test_frames`` test
    frames per test mode, each with wall time and device-busy time (how far the device is kept busy)."""
    from torch.profiler import ProfilerActivity, profile

    config = copy.deepcopy(config)
    config["train"].update(epochs=1, max_steps_per_epoch=train_steps, progress=False)
    det = memad.build(config)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    train_set = splits.get("training", config)
    test_full = splits.get("testing", config)
    n = min(test_full.lengths[0], test_frames + det.clip_length - 1)
    test_set = VideoSet(test_full.frames[:n], test_full.names[:1], [n], source=f"{test_full.source} (profile)")
    det.fit(train_set, epochs=1)  # untimed: warm-up (cuDNN autotuning, allocator)
    parts = [f"# Profile: {preset} on {environment(device)['device']}", "",
             f"torch {torch.__version__}; image size {config['data']['image_size']}; batch "
             f"{config['train']['batch_size']}; amp {config['train']['amp']}; channels_last "
             f"{config['train']['channels_last']}; compile {config['train']['compile']}.", ""]
    jobs = [("training", f"{train_steps} steps", lambda: det.fit(train_set, epochs=1))]
    for mode in MODES:
        def job(mode: str = mode) -> None:
            det.config["test"]["mode"] = mode
            det.score(test_set)
        job()  # warm-up for this mode
        jobs.append((f"test, {mode}", f"{n - det.clip_length + 1} frames", job))
    for name, what, fn in jobs:
        _sync(device)
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            fn()
            _sync(device)
            wall = time.perf_counter() - t0
        table, totals = _profile_table(prof, device, rows)
        busy = ""
        if "self_device_seconds" in totals:
            busy = (f"; device busy {totals['self_device_seconds']:.3f} s "
                    f"({100 * totals['self_device_seconds'] / wall:.0f}% of wall: a low share means the host, "
                    f"not the GPU, bounds the speed)")
        parts += [f"## {name} ({what}): wall {wall:.3f} s under the profiler{busy}", "", "```", table, "```", ""]
    return "\n".join(parts)


