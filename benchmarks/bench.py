"""Ped2 benchmark: train presets over seeds, score each trained model in both test modes.

For every preset and seed: train with the preset's settings (the paper's: 60 epochs for the
MNAD pair), then score the test split twice with the same weights, in ``sequential`` mode
(one frame per pass, the memory written after each frame: the paper's semantics) and in
``batched`` mode (``test.chunk`` frames per pass, the memory written once per chunk). Each
run records the metrics of both modes and their AUROC difference, training time and
clips/s, test frames/s per mode, peak GPU memory, device, PyTorch version, git commit, the
command line and the overrides.

    python benchmarks/bench.py                                   # mnad_pred, mnad_recon; 3 seeds; ../shared/data/ped2
    python benchmarks/bench.py --presets memae --seeds 3 --tag h100
    OMP_NUM_THREADS=1 python benchmarks/bench.py --presets mnad_pred --seeds 2 --epochs 2 \\
        --set data.image_size=64 --set "encoder.widths=[16,32,64,128]" --set train.max_steps_per_epoch=400 \\
        --tag cpu-small-64px                                   # the CPU check of docs/benchmarks.md
    python benchmarks/bench.py --summary-only                   # regenerate the table in docs/benchmarks.md

One JSON file per invocation: ``benchmarks/results/ped2_<tag>.json`` (``--tag``, default
device and time). It is rewritten after every run; rerunning with the same tag skips the
runs it already holds (same preset, seed and config) and refuses a run whose config differs.
``--summary-only`` rewrites only the text between the ``bench-summary`` markers of
``docs/benchmarks.md`` from every ``benchmarks/results/ped2_*.json`` and draws
``benchmarks/results/ped2_auroc.png``. ``--chunks C ...`` also scores batched mode with
other chunk sizes. ``--profile`` writes torch.profiler tables of a few
training steps and test frames per preset (``ped2_<tag>_profile_<preset>.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

import memad
from memad import runtime
from memad.config import make_config, parse_assignment
from memad.data import SplitCache, VideoSet
from memad.errors import ConfigError, MemadError
from memad.fileio import config_difference, write_json_atomic
from memad import training

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DOC = REPO / "docs" / "benchmarks.md"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ped2"
DEFAULT_PRESETS = ("mnad_pred", "mnad_recon")
BEGIN = "<!-- BEGIN bench-summary"
END = "<!-- END bench-summary -->"
MODES = ("sequential", "batched")
#: Per-mode metrics kept from :meth:`memad.scoring.runner.Scores.metrics`.
METRIC_KEYS = ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc", "fps", "frames",
               "frame_auroc_macro_pad", "frame_auroc_ci95", "rbdc", "tbdc", "calibrated_frame_auroc", "threshold",
               "event_recall", "false_alarms_per_1000", "delay_median", "delay_p90")


# -- environment -----------------------------------------------------------------------------
def git_state(repo: Path = REPO) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of ``repo``; ``MEMAD_GIT_COMMIT`` when there is no .git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, check=True, timeout=30).stdout
        return {"commit": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        # A copy of the working tree without .git (e.g. on a remote GPU machine): the caller may say.
        return {"commit": os.environ.get("MEMAD_GIT_COMMIT") or None, "dirty": None}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor(), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(device: torch.device) -> dict[str, Any]:
    """Device name, library versions, thread count and git state, recorded with every result."""
    env: dict[str, Any] = {
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memad": memad.__version__,
        "git": git_state(),
    }
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        threads = env["torch_threads"]
        env["device"] = f"CPU: {env['cpu']} ({threads} thread{'s' if threads != 1 else ''} of {env['cpu_count']} cores)"
    return env


def device_slug(device: torch.device) -> str:
    """A short file-name-safe device label: ``cpu``, ``nvidia-h100-80gb-hbm3``."""
    if device.type != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# -- one run ---------------------------------------------------------------------------------
def _warm_up(det, test: VideoSet) -> None:
    """One untimed pass over the first ``chunk + clip`` frames: CUDA kernels chosen, caches filled."""
    n = min(test.lengths[0], det.config["test"]["chunk"] + det.clip_length)
    det.score(VideoSet(test.frames[:n], test.names[:1], [n], source=f"{test.source} (warm-up)"))


def score_modes(det, test: VideoSet, device: torch.device, *, warm_up: bool,
                chunks: Sequence[int] = ()) -> dict[str, dict[str, Any]]:
    """Metrics of ``det`` on ``test`` in each test mode (the same weights; the memory is restored after each).

    Keys ``sequential`` and ``batched`` (the config's ``test.chunk``), then ``batched_chunk<c>``
    for each further chunk size in ``chunks``.
    """
    original = det.config["test"]["mode"], det.config["test"]["chunk"]
    passes = [(mode, original[1], mode) for mode in MODES]
    passes += [("batched", c, f"batched_chunk{c}") for c in dict.fromkeys(chunks) if c != original[1]]
    writes = det.config["test"]["update"] and det.memory.writes
    out: dict[str, dict[str, Any]] = {}
    try:
        for mode, chunk, key in passes:
            det.config["test"]["mode"], det.config["test"]["chunk"] = mode, chunk
            if warm_up:
                _warm_up(det, test)
            _reset_peak(device)
            scores = det.score(test)
            m = scores.metrics(threshold=det.threshold_)
            row = {k: m.get(k) for k in METRIC_KEYS}
            row["seconds"] = scores.seconds
            row["peak_gpu_mib"] = _peak_mib(device)
            row["chunk"] = 1 if mode == "sequential" and writes else chunk  # without writes: chunks either way
            out[key] = row
    finally:
        det.config["test"]["mode"], det.config["test"]["chunk"] = original
    return out


def train_and_score(preset: str, config: dict[str, Any], splits: SplitCache, device: torch.device, *,
                    checkpoint_dir: Path | None, warm_up: bool, chunks: Sequence[int] = ()) -> dict[str, Any]:
    """Train one detector from ``config``, score it in both modes; the run's record (without environment)."""
    det = memad.build(config)
    train_set = splits.get("training", config)
    test_set = splits.get("testing", config)
    epoch_seconds: list[float] = []
    last = [0.0]

    def log(record: dict[str, Any]) -> None:
        epoch_seconds.append(record["seconds"] - last[0])
        last[0] = record["seconds"]

    _reset_peak(device)
    _sync(device)
    summary = det.fit(train_set, out=checkpoint_dir, resume=True, log=log).fit_summary_
    _sync(device)
    train_peak = _peak_mib(device)
    det.calibrate(train_set)  # the threshold of the event metrics (on the training videos: holdout is 0 here)
    steps, bs = summary["steps_per_epoch"], config["train"]["batch_size"]
    epochs_timed = len(epoch_seconds)  # fewer than the epochs when resumed from a checkpoint
    modes = score_modes(det, test_set, device, warm_up=warm_up, chunks=chunks)
    seq, bat = modes["sequential"], modes["batched"]
    diff = None
    if seq["frame_auroc"] is not None and bat["frame_auroc"] is not None:
        diff = bat["frame_auroc"] - seq["frame_auroc"]
    return {
        "preset": preset,
        "seed": config["train"]["seed"],
        # The paper's semantics (sequential) for the headline metrics; both modes below.
        **{k: seq[k] for k in ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc")},
        "frame_auroc_batched": bat["frame_auroc"],
        "auroc_batched_minus_sequential": diff,
        "test_fps_sequential": seq["fps"],
        "test_fps_batched": bat["fps"],
        "train_seconds": summary["seconds"],
        "train_epochs": config["train"]["epochs"],
        "train_epochs_timed": epochs_timed,
        "train_epoch_seconds": epoch_seconds,
        "train_steps_per_epoch": steps,
        "train_clips_per_second": epochs_timed * steps * bs / summary["seconds"] if summary["seconds"] > 0 else None,
        "peak_gpu_mib_train": train_peak,
        "peak_gpu_mib_test": max((m["peak_gpu_mib"] for m in modes.values() if m["peak_gpu_mib"] is not None),
                                 default=None),
        "memory_writes_at_test": bool(config["test"]["update"] and det.memory.writes),
        "parameters": det.count_parameters()["total"],
        "modes": modes,
        "config": config,
    }


# -- the benchmark ---------------------------------------------------------------------------
def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["data.image_size=64", ...]`` -> ``{"data.image_size": 64, ...}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, value = parse_assignment(item)
        out[key] = value
    return out


def preset_configs(presets: Sequence[str], overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A validated config per preset; an override a preset refuses is an error naming the preset."""
    if not presets:
        raise ConfigError("--presets: give at least one preset")
    known = memad.list_presets()
    configs = {}
    for preset in presets:
        if preset not in known:
            raise ConfigError(f"--presets: unknown preset {preset!r}; registered: {', '.join(known)}")
        try:
            configs[preset] = make_config(preset, overrides)
        except ConfigError as exc:
            raise ConfigError(f"preset {preset!r}: {exc}") from exc
    return configs


def _load_existing(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MemadError(f"{path}: not valid JSON ({exc}); move it away or use another --tag") from exc
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise MemadError(f"{path}: expected a benchmark results file with a 'runs' list")
    return data["runs"]


def run_benchmark(presets: Sequence[str], data: Any, *, seeds: int = 3, epochs: int | None = None,
                  overrides: Mapping[str, Any] | None = None, tag: str | None = None,
                  results_dir: Path = RESULTS, copy_to: Path | None = None, checkpoints: Path | None = None,
                  device: str | None = None, warm_up: bool | None = None, max_minutes: float | None = None,
                  progress: bool = True, command: Sequence[str] | None = None, chunks: Sequence[int] = ()) -> Path:
    """Run (or resume) the benchmark; returns the path of ``ped2_<tag>.json``.

    ``copy_to`` gets a copy of the results file after every run (a GPU job's output folder).
    ``max_minutes``: start no run that would end after this many minutes at the pace of the
    longest run so far (for jobs with a time limit; the file stays resumable). ``warm_up``
    (default: on CUDA only) scores a few frames untimed before each mode. ``chunks``: further
    ``test.chunk`` sizes to score in batched mode (a chunk of 1 is the sequential procedure).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds: expected an integer >= 1, got {seeds!r}")
    bad = [c for c in chunks if isinstance(c, bool) or not isinstance(c, int) or c < 1]
    if bad:
        raise ConfigError(f"--chunks: expected integers >= 1, got {bad[0]!r}")
    # The paper's protocol: every training video is trained on (no normal video kept for calibration).
    overrides = {"train.holdout": 0.0, **dict(overrides or {})}
    if epochs is not None:
        overrides["train.epochs"] = epochs
    if device is not None:
        overrides["train.device"] = device
    if not progress:
        overrides["train.progress"] = False
    configs = preset_configs(presets, overrides)
    dev = runtime.pick_device(next(iter(configs.values()))["train"]["device"])
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={dev}: CUDA is not available here")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    warm_up = dev.type == "cuda" if warm_up is None else warm_up
    tag = tag or f"{device_slug(dev)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", tag):
        raise ConfigError(f"--tag: use letters, digits, '.', '_' and '-' only, got {tag!r}")
    path = Path(results_dir) / f"ped2_{tag}.json"
    runs = _load_existing(path)
    env = environment(dev)
    header = {
        "benchmark": "ped2", "tag": tag, "data": str(data), "command": list(command or sys.argv),
        "command_line": shlex.join(command or sys.argv), "overrides": overrides, "presets": list(presets),
        "seeds": seeds, "chunks": list(chunks), "environment": env,
    }
    splits = SplitCache(data)
    t_start, longest = time.monotonic(), 0.0
    todo = [(p, k) for p in configs for k in range(seeds)]
    bar = tqdm(todo, desc="bench", unit="run", disable=not progress, dynamic_ncols=True)
    for preset, k in bar:
        config = copy.deepcopy(configs[preset])
        config["train"]["seed"] = configs[preset]["train"]["seed"] + k
        done = [r for r in runs if r["preset"] == preset and r["seed"] == config["train"]["seed"]]
        if done:
            diff = config_difference(done[0]["config"], config)
            if diff is not None:
                raise ConfigError(f"{path}: holds {preset} seed {config['train']['seed']} with another config "
                                  f"({diff}); use another --tag")
            bar.set_postfix_str(f"{preset} seed {k}: done before")
            continue
        if max_minutes is not None and time.monotonic() - t_start + longest > 60 * max_minutes:
            tqdm.write(f"bench: stopping before {preset} seed {k}: it would end after {max_minutes} min; rerun "
                       f"with --tag {tag} to go on")
            break
        t_run = time.monotonic()
        bar.set_postfix_str(f"{preset} seed {k}")
        ckpt = None if checkpoints is None else Path(checkpoints) / tag / preset / f"seed{k}"
        record = train_and_score(preset, config, splits, dev, checkpoint_dir=ckpt, warm_up=warm_up, chunks=chunks)
        record.update(seed_index=k, environment=env, command_line=header["command_line"], overrides=overrides,
                      finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        runs.append(record)
        longest = max(longest, time.monotonic() - t_run)
        write_json_atomic(path, {**header, "runs": runs})
        if copy_to is not None:
            write_json_atomic(Path(copy_to) / path.name, {**header, "runs": runs})
        tqdm.write(f"bench: {preset} seed {config['train']['seed']}: AUROC sequential {record['frame_auroc']:.4f}, "
                   f"batched {record['frame_auroc_batched']:.4f}; train {record['train_seconds']:.1f} s; "
                   f"test {record['test_fps_sequential']:.1f} / {record['test_fps_batched']:.1f} frames/s")
    bar.close()
    if not path.is_file():  # nothing ran (all stopped by max_minutes): still leave the header
        write_json_atomic(path, {**header, "runs": runs})
    return path


# -- profile ---------------------------------------------------------------------------------
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


# -- summary ---------------------------------------------------------------------------------
def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


def _fmt(values: Sequence[float | None], digits: int, scale: float = 1.0, signed: bool = False) -> str:
    mean, std = _mean_std([None if v is None else v * scale for v in values])
    if mean is None:
        return "n/a"
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def _settings(runs: Sequence[Mapping[str, Any]]) -> str:
    cfg = runs[0]["config"]
    size = cfg["data"]["image_size"]
    parts = [f"{size}px" if isinstance(size, int) else f"{size[0]}x{size[1]}px", f"{cfg['train']['epochs']} ep"]
    cap = cfg["train"]["max_steps_per_epoch"]
    if cap:
        parts.append(f"≤{cap} steps/ep")
    skip = {"data.image_size", "train.epochs", "train.max_steps_per_epoch", "train.progress", "train.device"}
    extra = [f"{k}={v}" for k, v in (runs[0].get("overrides") or {}).items() if k not in skip]
    return ", ".join(parts + extra)


def _by_chunk(runs: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, str]]:
    """Batched passes per chunk size (the config's and any ``--chunks``): AUROC, its change, frames/s."""
    chunks: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run in runs:
        for key, row in run["modes"].items():
            if key.startswith("batched") and "chunk" in row:
                chunks.setdefault(row["chunk"], []).append((run, row))
    out = {}
    for chunk in sorted(chunks):
        pairs = chunks[chunk]
        diffs = [None if row["frame_auroc"] is None or run["frame_auroc"] is None
                 else row["frame_auroc"] - run["frame_auroc"] for run, row in pairs]
        out[chunk] = {"runs": str(len(pairs)), "auroc": _fmt([row["frame_auroc"] for _, row in pairs], 2, 100),
                      "diff": _fmt(diffs, 2, 100, signed=True), "fps": _fmt([row["fps"] for _, row in pairs], 1)}
    return out


def _device_label(env: Mapping[str, Any]) -> str:
    """The recorded GPU name, or the CPU with its thread count."""
    if env.get("device_type") != "cpu":
        return env["device"]
    threads = env["torch_threads"]
    return f"CPU: {env['cpu']} ({threads} thread{'s' if threads != 1 else ''} of {env['cpu_count']} cores)"


def summary_rows(files: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per (results file, preset): mean ± std over the seeds it holds."""
    rows = []
    for path in files:
        data = json.loads(path.read_text())
        by_preset: dict[str, list[dict[str, Any]]] = {}
        for run in data.get("runs", []):
            by_preset.setdefault(run["preset"], []).append(run)
        for preset, runs in by_preset.items():
            env = runs[0]["environment"]
            commits = sorted({(r["environment"]["git"]["commit"] or "unknown")[:8]
                              + ("+dirty" if r["environment"]["git"]["dirty"] else "") for r in runs})
            gpu = [r["peak_gpu_mib_train"] for r in runs]
            rows.append({
                "file": path.name, "preset": preset, "seeds": len(runs), "settings": _settings(runs),
                "device": _device_label(env), "torch": env["torch"], "commit": ", ".join(commits),
                "seq": _fmt([r["frame_auroc"] for r in runs], 2, 100),
                "bat": _fmt([r["frame_auroc_batched"] for r in runs], 2, 100),
                "diff": _fmt([r["auroc_batched_minus_sequential"] for r in runs], 2, 100, signed=True),
                "macro": _fmt([r["frame_auroc_macro"] for r in runs], 2, 100),
                "pixel": _fmt([r["pixel_auroc"] for r in runs], 2, 100),
                "train": _fmt([r["train_seconds"] for r in runs], 1),
                "clips": _fmt([r["train_clips_per_second"] for r in runs], 1),
                "fps_seq": _fmt([r["test_fps_sequential"] for r in runs], 1),
                "fps_bat": _fmt([r["test_fps_batched"] for r in runs], 1),
                "gpu": "n/a (CPU)" if all(g is None for g in gpu) else _fmt(gpu, 0),
                "auroc_seq": [r["frame_auroc"] for r in runs], "auroc_bat": [r["frame_auroc_batched"] for r in runs],
                "by_chunk": _by_chunk(runs),
            })
    return rows


def summary_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The generated block of docs/benchmarks.md: the table and how to read it."""
    if not rows:
        return "No results yet.\n"
    quality = (("file", "results file"), ("preset", "preset"), ("settings", "settings"), ("seeds", "seeds"),
               ("seq", "frame AUROC % sequential"), ("bat", "frame AUROC % batched"),
               ("diff", "batched − sequential"), ("macro", "AUROC per video % (seq.)"),
               ("pixel", "pixel AUROC % (seq.)"))
    speed = (("file", "results file"), ("preset", "preset"), ("train", "train s"), ("clips", "train clips/s"),
             ("fps_seq", "test frames/s sequential"), ("fps_bat", "test frames/s batched"),
             ("gpu", "peak GPU MiB (train)"), ("device", "device"), ("torch", "torch"), ("commit", "commit"))
    lines = ["Mean ± sample standard deviation over seeds (no ± with one seed). AUROC in percent over the test "
             "frames of all videos pooled; sequential is the paper's test procedure, batched writes the memory "
             "once per chunk. Settings: image size, epochs, any step cap and overrides; all else is the preset's.",
             ""]
    for columns, numeric in ((quality, range(3, 9)), (speed, range(2, 7))):
        lines.append("| " + " | ".join(title for _, title in columns) + " |")
        lines.append("|" + "|".join("---:" if i in numeric else "---" for i in range(len(columns))) + "|")
        for r in rows:
            lines.append("| " + " | ".join(f"`{r[k]}`" if k == "file" else str(r[k]) for k, _ in columns) + " |")
        lines.append("")
    swept = [r for r in rows if len(r["by_chunk"]) > 1]
    if swept:  # --chunks: batched AUROC against chunk size, the same models
        lines += ["Batched mode by `test.chunk` (the memory written once per chunk; chunk 1 is the sequential "
                  "procedure run through the batched path):", "",
                  "| results file | preset | chunk | runs | frame AUROC % | − sequential | test frames/s |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in swept:
            for chunk, c in r["by_chunk"].items():
                lines.append(f"| `{r['file']}` | {r['preset']} | {chunk} | {c['runs']} | {c['auroc']} | {c['diff']} "
                             f"| {c['fps']} |")
        lines.append("")
    return "\n".join(lines)


def replace_between_markers(text: str, block: str, source: str = "docs/benchmarks.md") -> str:
    """``text`` with everything between the BEGIN/END bench-summary lines replaced by ``block``."""
    start = text.find(BEGIN)
    if start < 0:
        raise MemadError(f"{source}: no line starting with {BEGIN!r}")
    body = text.index("\n", start) + 1
    end = text.find(END, body)
    if end < 0:
        raise MemadError(f"{source}: {BEGIN!r} has no {END!r} after it")
    return text[:body] + block.rstrip("\n") + "\n" + text[end:]


def plot_summary(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Frame AUROC per seed (dots) and mean (bar) per results file and preset, both test modes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 3.6), constrained_layout=True)
    for i, row in enumerate(rows):
        for j, (key, colour, label) in enumerate((("auroc_seq", "tab:blue", "sequential"),
                                                  ("auroc_bat", "tab:orange", "batched"))):
            vals = [100 * v for v in row[key] if v is not None]
            x = i + (j - 0.5) * 0.36
            if vals:
                ax.bar(x, np.mean(vals), width=0.34, color=colour, alpha=0.45, label=label if i == 0 else None)
                ax.scatter([x] * len(vals), vals, color=colour, s=14, zorder=3)
        for seq, bat in zip(row["auroc_seq"], row["auroc_bat"]):  # one line per seed: the same model, two modes
            if seq is not None and bat is not None:
                ax.plot([i - 0.18, i + 0.18], [100 * seq, 100 * bat], color="0.4", lw=0.8, zorder=2)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['preset']}\n{r['file'].removeprefix('ped2_').removesuffix('.json')}" for r in rows],
                       fontsize=8)
    lows = [100 * v for r in rows for v in r["auroc_seq"] + r["auroc_bat"] if v is not None]
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 5), 100)
    ax.set_ylabel("frame AUROC on Ped2 (%)")
    ax.set_title("Ped2 frame AUROC per run (dots) and mean (bars);\na line joins the two test modes of one model",
                 fontsize=9)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.42), ncol=2, fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_summary(results_dir: Path = RESULTS, doc: Path = DOC, plot: bool = True) -> list[dict[str, Any]]:
    """Rewrite the generated block of ``doc`` from ``results_dir/ped2_*.json``; draw ``ped2_auroc.png``."""
    files = sorted(p for p in Path(results_dir).glob("ped2_*.json") if not p.name.startswith("."))
    rows = summary_rows(files)
    block = summary_markdown(rows)
    if rows and plot:
        image = plot_summary(rows, Path(results_dir) / "ped2_auroc.png")
        rel = os.path.relpath(image, Path(doc).parent).replace(os.sep, "/")
        block += f"\n![Ped2 frame AUROC per run]({rel})\n"
    doc = Path(doc)
    if not doc.is_file():
        raise MemadError(f"{doc}: no such file (the summary goes between its bench-summary markers)")
    doc.write_text(replace_between_markers(doc.read_text(), block, str(doc)))
    return rows


# -- CLI -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), metavar="PRESET",
                   help="presets to run (default: mnad_pred mnad_recon)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root (default ../shared/data/ped2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per preset: train.seed + 0, 1, ... (default 3)")
    p.add_argument("--epochs", type=int, help="training epochs (default: each preset's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every preset")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument("--tag", help="results file name: ped2_<tag>.json (default: device and time)")
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--copy-to", type=Path, help="also write the results file here after every run")
    p.add_argument("--checkpoints", type=Path,
                   help="save a checkpoint after every epoch under this folder, to resume a killed run "
                        "(costs time: off by default)")
    p.add_argument("--max-minutes", type=float,
                   help="start no run that would end after this many minutes, at the pace of the longest so far")
    p.add_argument("--warm-up", action=argparse.BooleanOptionalAction, default=None,
                   help="score a few frames untimed before each timed test pass (default: on CUDA only)")
    p.add_argument("--chunks", type=int, nargs="+", default=[], metavar="C",
                   help="also score in batched mode with these test.chunk sizes (AUROC and frames/s per size)")
    p.add_argument("--profile", action="store_true",
                   help="also profile a few training steps and test frames per preset (torch.profiler tables)")
    p.add_argument("--profile-only", action="store_true", help="profile, without the benchmark runs")
    p.add_argument("--summary-only", action="store_true",
                   help="only regenerate the table in docs/benchmarks.md from benchmarks/results/ped2_*.json")
    p.add_argument("--doc", type=Path, default=DOC, help="the document holding the bench-summary markers")
    p.add_argument("--no-progress", action="store_true")
    return p


def _shown_path(script: Path) -> str:
    """The script as run from the repository root (``benchmarks/bench.py``) when it lies inside it."""
    try:
        return script.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(script)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = ["python", _shown_path(Path(sys.argv[0]) if argv is None else Path(__file__)),
               *(sys.argv[1:] if argv is None else argv)]
    try:
        if args.summary_only:
            rows = write_summary(args.results, args.doc)
            print(f"bench: {len(rows)} rows from {args.results}/ped2_*.json -> {args.doc}", file=sys.stderr)
            return 0
        overrides = parse_overrides(args.set)
        if args.profile or args.profile_only:
            prof_overrides = {**overrides, **({"train.device": args.device} if args.device else {})}
            configs = preset_configs(args.presets, prof_overrides)
            dev = runtime.pick_device(next(iter(configs.values()))["train"]["device"])
            if dev.type == "cuda":
                torch.backends.cudnn.benchmark = True
            tag = args.tag or f"{device_slug(dev)}-{time.strftime('%Y%m%d-%H%M%S')}"
            splits = SplitCache(args.data)
            for preset, config in configs.items():
                text = profile_preset(preset, config, splits, dev)
                for folder in [args.results] + ([args.copy_to] if args.copy_to else []):
                    out = Path(folder) / f"ped2_{tag}_profile_{preset}.md"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(text)
                    print(f"bench: profile -> {out}", file=sys.stderr)
            if args.profile_only:
                return 0
        path = run_benchmark(args.presets, args.data, seeds=args.seeds, epochs=args.epochs, overrides=overrides,
                             tag=args.tag, results_dir=args.results, copy_to=args.copy_to,
                             checkpoints=args.checkpoints, device=args.device, warm_up=args.warm_up,
                             max_minutes=args.max_minutes, progress=not args.no_progress, command=command,
                             chunks=args.chunks)
        print(f"bench: results -> {path}", file=sys.stderr)
        return 0
    except MemadError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
