"""The Ped2 benchmark's runs: train a preset for a seed, score the same weights in both test modes, and
the loop over presets and seeds that writes ``results/ped2_<tag>.json`` after every run."""

from __future__ import annotations

import copy
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

import memad
from memad import runtime
from memad.config import make_config, parse_assignment
from memad.data import SplitCache, VideoSet
from memad.errors import ConfigError, MemadError
from memad.fileio import config_difference, write_json_atomic

from .environment import RESULTS, _peak_mib, _reset_peak, _sync, device_slug, environment

MODES = ("sequential", "batched")
#: Per-mode metrics kept from :meth:`memad.scoring.scores.Scores.metrics`.
METRIC_KEYS = ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc", "fps", "frames",
               "frame_auroc_macro_pad", "frame_auroc_ci95", "rbdc", "tbdc", "calibrated_frame_auroc", "threshold",
               "event_recall", "false_alarms_per_1000", "delay_median", "delay_p90")


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


