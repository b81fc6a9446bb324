"""Compare detectors on one dataset: train and evaluate each preset for each seed, then
write a results table (Markdown, CSV, JSON), plots and a report.

Layout of ``out``::

    runs/<preset>/seed<k>/checkpoint.pt   training checkpoint (resumable; holds the calibration and threshold)
    runs/<preset>/seed<k>/scores.npz      test scores, frame/video indices, labels, top error maps
    runs/<preset>/seed<k>/metrics.json    metrics and config; written last, marks the run finished
    results.md, results.csv, results.json the table: mean and standard deviation over seeds
                                          (tables, plots and report: :mod:`memad.reports.compare_report`)
    plots/roc.png, plots/timelines.png, plots/top_frames_<preset>.png
    report.md                             the table and the plots on one page

Each run reports the paper's protocol (scores min-max normalised per test video) and the
calibrated one (signals normalised with ranges learned on normal training frames, see
:mod:`memad.scoring.calibration`), with precision, recall, F1 and the false-alarm rate on
normal test frames at the calibrated threshold. A rerun skips finished runs and resumes
unfinished ones from their last epoch, so an interrupted comparison picks up where it
stopped. ``memad compare`` is the CLI form.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from ..checkpoint import update_checkpoint
from ..config import make_config
from ..data import SplitCache
from ..errors import ConfigError
from ..fileio import config_difference, write_json_atomic
from ..tracking import Tracking, resolve_loggers
from ..training import CHECKPOINT_NAME
from .compare_report import (
    Comparison,
    RunResult,
    aggregate,
    load_run_scores,
    save_run_scores,
    write_plots,
    write_report,
    write_tables,
)

__all__ = ["compare", "Comparison", "RunResult", "load_run_scores", "DEFAULT_FALSE_ALARM_RATE"]

#: The calibrated threshold's false-alarm rate on normal frames unless another is asked for.
DEFAULT_FALSE_ALARM_RATE = 0.01
def _epoch_seconds(path: Path) -> dict[int, float]:
    return {int(k): float(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def _train_and_evaluate(config: dict[str, Any], run_dir: Path, splits: SplitCache, false_alarm_rate: float,
                        tracking: Tracking | None = None) -> dict[str, Any]:
    from ..detector import build
    from ..scoring.calibration import warn_holdout_shortfall

    run_dir.mkdir(parents=True, exist_ok=True)
    det = build(config)
    times_path = run_dir / "epoch_seconds.json"
    epoch_seconds = _epoch_seconds(times_path)
    last = [0.0]

    def log(record: dict[str, Any]) -> None:
        # Per-epoch durations survive interruptions, so a resumed run reports its whole training time.
        epoch_seconds[int(record["epoch"])] = record["seconds"] - last[0]
        last[0] = record["seconds"]
        write_json_atomic(times_path, epoch_seconds)

    if tracking is not None:
        tracking.log_config(config)
    warn_holdout_shortfall(det, splits.get("training", config).lengths, false_alarm_rate)
    det.fit(splits.get("training", config), out=run_dir, resume=True, log=log,
            callbacks=[tracking] if tracking is not None else [])
    epochs = config["train"]["epochs"]
    train_seconds = sum(_epoch_seconds(times_path).get(e, 0.0) for e in range(1, epochs + 1))

    det.calibrate(splits.get("training", config), false_alarm_rate=false_alarm_rate)
    scores = det.score(splits.get("testing", config))
    metrics = scores.metrics(threshold=det.threshold_)
    metrics.update(requested_false_alarm_rate=false_alarm_rate,
                   check_false_alarm_rate=det.calibration_["check_false_alarm_rate"],
                   holdout_videos=det.holdout_videos_,
                   params=det.count_parameters()["total"], train_seconds=train_seconds, epochs=epochs)
    save_run_scores(run_dir / "scores.npz", scores)
    # The finished checkpoint also carries the calibration (optimiser state kept for resuming).
    update_checkpoint(run_dir / CHECKPOINT_NAME, calibration=det.calibration_, threshold=det.threshold_)
    if tracking is not None:
        tracking.log_final(metrics)
        tracking.log_reference("checkpoint", run_dir / CHECKPOINT_NAME)
        tracking.log_artifacts([run_dir / "history.json"])
    return metrics


# -- the comparison --------------------------------------------------------------------------
def _preset_configs(presets: Sequence[str], overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if isinstance(presets, str):
        presets = [presets]
    if not presets:
        raise ConfigError("compare: give at least one preset")
    dup = sorted({p for p in presets if list(presets).count(p) > 1})
    if dup:
        raise ConfigError(f"compare: preset {dup[0]!r} is named twice")
    configs = {}
    for preset in presets:
        try:
            configs[preset] = make_config(preset, overrides)
        except ConfigError as exc:
            # Overrides apply to every preset: say which one refused it.
            raise ConfigError(f"preset {preset!r}: {exc}") from exc
    return configs


def compare(
    presets: Sequence[str],
    data: Any,
    *,
    seeds: int = 1,
    epochs: int | None = None,
    out: str | Path = "runs/compare",
    overrides: Mapping[str, Any] | None = None,
    labels: str | Path | None = None,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    plots: bool = True,
    progress: bool = True,
    echo: bool = False,
    loggers: Sequence[str] = (),
) -> Comparison:
    """Train and evaluate each preset for each seed on ``data``; write the table, plots and report.

    Args:
        presets: registered preset names, e.g. ``["mnad_pred", "mnad_recon", "ae"]``.
        data: a dataset root in the frame-folder layout, or a registered dataset name
            such as ``"synthetic"``.
        seeds: runs per preset, with ``train.seed`` = base seed + 0, 1, ...
        epochs: training epochs (default: each preset's ``train.epochs``).
        out: the output folder (see the module docstring for its layout).
        overrides: config overrides applied to every preset (``{"data.image_size": 64}``);
            one that a preset's components do not accept is an error naming the preset.
        labels: a label file for the test split (default: found in the dataset root).
        false_alarm_rate: the calibrated threshold lets this fraction of normal training
            frames through; precision, recall, F1 and the false-alarm rate on normal test
            frames are reported at it.
        plots: write the PNG plots and ``report.md``.
        progress: show progress bars.
        echo: print the Markdown table to standard output at the end.
        loggers: experiment loggers (``"tensorboard"``, ``"mlflow"``, a plugin's): each run trained here is
            its own tracked run, named ``<preset>/seed<k>`` and tagged with its preset and seed, in a
            store under ``out`` (docs/tracking.md); reused runs are not logged again.

    Finished runs (those with ``metrics.json``) are reused, unfinished ones resume from
    their last epoch checkpoint. A finished run whose config differs from the one asked
    for is an error (use another ``out`` or delete the run folder).

    Example::

        result = memad.compare(["mnad_pred", "ae"], "synthetic", seeds=2, epochs=4,
                               overrides={"data.image_size": 64}, out="runs/cmp")
        print(result.markdown())
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds: expected an integer >= 1, got {seeds!r}")
    if isinstance(false_alarm_rate, bool) or not 0.0 < float(false_alarm_rate) < 1.0:
        raise ConfigError(f"false_alarm_rate: expected a fraction in (0, 1), got {false_alarm_rate!r}")
    overrides = dict(overrides or {})
    if epochs is not None:
        overrides["train.epochs"] = epochs
    if not progress:
        overrides["train.progress"] = False
    configs = _preset_configs(presets, overrides)
    out = Path(out)
    splits = SplitCache(data, labels)
    names = resolve_loggers(loggers)  # an unknown logger or a missing package stops us before training

    results: list[RunResult] = []
    tracked: dict[tuple[str, int], Tracking] = {}  # open until the plots are logged
    total = len(configs) * seeds
    bar = tqdm(total=total, desc="compare", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        for preset, base in configs.items():
            for k in range(seeds):
                config = copy.deepcopy(base)
                config["train"]["seed"] = base["train"]["seed"] + k
                run_dir = out / "runs" / preset / f"seed{k}"
                bar.set_postfix_str(f"{preset} seed {k}")
                tracking = _tracking(names, out, preset, k, config, data) if names and not _finished(run_dir) \
                    else None
                if tracking is not None:
                    tracked[preset, k] = tracking
                results.append(_run(preset, k, config, run_dir, splits, false_alarm_rate, tracking))
                bar.update(1)

        rows = aggregate(results)
        comparison = Comparison(results, rows, out)
        out.mkdir(parents=True, exist_ok=True)
        comparison.files.update(write_tables(rows, results, out, data=str(data), false_alarm_rate=false_alarm_rate))
        if plots:
            comparison.files.update(write_plots(results, splits, configs, out))
            comparison.files["report"] = write_report(comparison, data=str(data), false_alarm_rate=false_alarm_rate)
        for (preset, _), tracking in tracked.items():
            tracking.log_artifacts([path for key, path in comparison.files.items() if path.suffix == ".png"
                                    and (not key.startswith("top_frames_") or key == f"top_frames_{preset}")])
    except BaseException:
        for tracking in tracked.values():
            tracking.close(failed=True)
        raise
    finally:
        bar.close()
    for tracking in tracked.values():
        tracking.close()
    if echo:
        print(comparison.markdown())
    return comparison


def _finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file()


def _tracking(names: Sequence[str], out: Path, preset: str, k: int, config: Mapping[str, Any], data: Any) -> Tracking:
    """The tracked run of ``preset`` seed index ``k`` of the comparison in ``out``."""
    return Tracking(names, out, f"{preset}/seed{k}", experiment=f"compare {out.resolve().name}",
                    tags={"preset": preset, "seed": config["train"]["seed"], "seed_index": k, "data": data,
                          "command": "compare"})


def _run(preset: str, seed_index: int, config: dict[str, Any], run_dir: Path, splits: SplitCache,
         false_alarm_rate: float, tracking: Tracking | None = None) -> RunResult:
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        saved = json.loads(metrics_path.read_text())
        diff = config_difference(saved["config"], config)
        asked = saved["metrics"].get("requested_false_alarm_rate")
        if diff is None and asked != false_alarm_rate:
            diff = f"false-alarm rate: {asked} there, {false_alarm_rate} now"
        if diff is not None:
            raise ConfigError(f"{run_dir}: holds a finished run with a different config ({diff}); "
                              f"use another --out or delete that folder")
        return RunResult(preset, seed_index, run_dir, saved["metrics"], reused=True)
    metrics = _train_and_evaluate(config, run_dir, splits, false_alarm_rate, tracking)
    write_json_atomic(metrics_path, {"preset": preset, "seed": config["train"]["seed"], "metrics": metrics,
                                      "config": config, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return RunResult(preset, seed_index, run_dir, metrics, reused=False)
