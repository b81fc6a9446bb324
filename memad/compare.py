"""Compare detectors on one dataset: train and evaluate each preset for each seed, then
write a results table (Markdown, CSV, JSON), plots and a report.

Layout of ``out``::

    runs/<preset>/seed<k>/checkpoint.pt   training checkpoint (resumable; holds threshold_)
    runs/<preset>/seed<k>/scores.npz      test scores, frame/video indices, labels, top error maps
    runs/<preset>/seed<k>/metrics.json    metrics and config; written last, marks the run finished
    results.md, results.csv, results.json the table: mean and standard deviation over seeds
    plots/roc.png, plots/timelines.png, plots/top_frames_<preset>.png
    report.md                             the table and the plots on one page

A rerun skips finished runs and resumes unfinished ones from their last epoch, so an
interrupted comparison picks up where it stopped. ``memad compare`` is the CLI form.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import training
from .checkpoint import atomic_save, read_checkpoint
from .cli import _add_set, _overrides, subcommand
from .config import make_config
from .data import SplitCache, VideoSet
from .errors import ConfigError
from .interfaces import FrameStats
from .records import config_difference, write_json_atomic
from .threshold import precision_recall_f1, resolve_percentile, threshold_from_scores

__all__ = ["compare", "Comparison", "RunResult", "METRICS", "load_run_scores"]

#: Table columns: key in a run's metrics, heading, whether higher is better (None: neither).
METRICS: tuple[tuple[str, str, bool | None], ...] = (
    ("frame_auroc", "frame AUROC", True),
    ("frame_auroc_macro", "AUROC per video", True),
    ("aupr", "AUPR", True),
    ("eer", "EER", False),
    ("pixel_auroc", "pixel AUROC", True),
    ("precision", "precision@thr", True),
    ("recall", "recall@thr", True),
    ("f1", "F1@thr", True),
    ("params", "parameters", None),
    ("train_seconds", "train s", None),
    ("fps", "test frames/s", None),
)
#: Error maps kept per run (those of the highest-scoring frames), for the top-frames plot.
TOP_MAPS = 16


@dataclass
class RunResult:
    """One preset trained and evaluated with one seed."""

    preset: str
    seed: int
    dir: Path
    metrics: dict[str, Any]
    reused: bool


@dataclass
class Comparison:
    """What :func:`compare` returns: every run, the aggregated rows and the files written."""

    runs: list[RunResult]
    rows: list[dict[str, Any]]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    def markdown(self) -> str:
        """The results table as Markdown (mean ± standard deviation over seeds)."""
        return results_markdown(self.rows)


# -- per-run files ---------------------------------------------------------------------------
def _save_scores(path: Path, scores, train_scores: np.ndarray) -> None:
    top = np.argsort(-scores.scores, kind="stable")[:TOP_MAPS]
    arrays: dict[str, np.ndarray] = {
        "scores": scores.scores, "frame": scores.frame, "video": scores.video,
        "psnr": scores.stats.psnr, "mse": scores.stats.mse, "train_scores": train_scores,
        "top": top, "video_names": np.array(scores.video_names),
    }
    if scores.labels is not None:
        arrays["labels"] = scores.labels
    if scores.stats.distance is not None:
        arrays["distance"] = scores.stats.distance
    if scores.maps is not None:
        arrays["top_maps"] = scores.maps[torch.from_numpy(top)].half().numpy()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)


def load_run_scores(run_dir: str | Path, videos: VideoSet | None = None, *, top_only: bool = False):
    """A run's saved test scores as :class:`memad.evaluation.Scores`.

    With ``top_only``, only the highest-scoring frames whose error maps were kept are
    returned, with those maps (and, given the test ``videos``, their masks): what
    :func:`memad.plots.top_frames_grid` needs.
    """
    from .evaluation import Scores

    with np.load(Path(run_dir) / "scores.npz", allow_pickle=False) as npz:
        arr = {k: npz[k] for k in npz.files}
    sel = arr["top"] if top_only else np.arange(len(arr["scores"]))
    labels = arr["labels"][sel] if "labels" in arr else None
    maps = torch.from_numpy(arr["top_maps"]) if top_only and "top_maps" in arr else None
    masks = None
    if top_only and videos is not None and videos.masks is not None:
        masks = videos.masks[torch.from_numpy(arr["frame"][sel])]
    stats = FrameStats(video=arr["video"][sel], psnr=arr["psnr"][sel], mse=arr["mse"][sel],
                       distance=arr["distance"][sel] if "distance" in arr else None)
    return Scores(scores=arr["scores"][sel], frame=arr["frame"][sel], video=arr["video"][sel], labels=labels,
                  stats=stats, maps=maps, masks=masks, video_names=[str(n) for n in arr["video_names"]], seconds=0.0)


# -- one run ---------------------------------------------------------------------------------
def _epoch_seconds(path: Path) -> dict[int, float]:
    return {int(k): float(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def _train_and_evaluate(config: dict[str, Any], run_dir: Path, splits: SplitCache, percentile: float) \
        -> dict[str, Any]:
    from .detector import build

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

    training.train(det, splits.get("training", config), out=run_dir, resume=True, log=log)
    epochs = config["train"]["epochs"]
    train_seconds = sum(_epoch_seconds(times_path).get(e, 0.0) for e in range(1, epochs + 1))

    scores = det.score(splits.get("testing", config))
    metrics = scores.metrics()
    # The threshold as Detector.fit_threshold picks it; the normal scores are kept for the plots.
    normal_scores = det.score(splits.get("training", config)).scores
    det.threshold_ = threshold_from_scores(normal_scores, percentile)
    predicted = det.predict(scores)
    if scores.labels is not None:
        metrics.update(precision_recall_f1(scores.labels, predicted))
    metrics.update(threshold=det.threshold_, threshold_percentile=percentile,
                   params=det.count_parameters()["total"], train_seconds=train_seconds, epochs=epochs)
    _save_scores(run_dir / "scores.npz", scores, normal_scores)
    # The finished checkpoint also carries the fitted threshold (optimiser state kept for resuming).
    ckpt_path = run_dir / training.CHECKPOINT_NAME
    ckpt = read_checkpoint(ckpt_path)
    ckpt["threshold"] = det.threshold_
    atomic_save(ckpt, ckpt_path)
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
    percentile: float | None = None,
    contamination: float | None = None,
    plots: bool = True,
    progress: bool = True,
    echo: bool = False,
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
        percentile, contamination: how the deployment threshold is chosen from the
            scores of the normal training frames (default ``percentile=99``); precision,
            recall and F1 are reported at it.
        plots: write the PNG plots and ``report.md``.
        progress: show progress bars.
        echo: print the Markdown table to standard output at the end.

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
    pct = resolve_percentile(percentile, contamination)
    overrides = dict(overrides or {})
    if epochs is not None:
        overrides["train.epochs"] = epochs
    if not progress:
        overrides["train.progress"] = False
    configs = _preset_configs(presets, overrides)
    out = Path(out)
    splits = SplitCache(data, labels)

    results: list[RunResult] = []
    total = len(configs) * seeds
    bar = tqdm(total=total, desc="compare", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        for preset, base in configs.items():
            for k in range(seeds):
                config = copy.deepcopy(base)
                config["train"]["seed"] = base["train"]["seed"] + k
                run_dir = out / "runs" / preset / f"seed{k}"
                bar.set_postfix_str(f"{preset} seed {k}")
                results.append(_run(preset, k, config, run_dir, splits, pct))
                bar.update(1)
    finally:
        bar.close()

    rows = aggregate(results)
    comparison = Comparison(results, rows, out)
    out.mkdir(parents=True, exist_ok=True)
    comparison.files.update(write_tables(rows, results, out, data=str(data), percentile=pct))
    if plots:
        comparison.files.update(write_plots(results, splits, configs, out))
        comparison.files["report"] = write_report(comparison, data=str(data), percentile=pct)
    if echo:
        print(comparison.markdown())
    return comparison


def _run(preset: str, seed_index: int, config: dict[str, Any], run_dir: Path, splits: SplitCache,
         percentile: float) -> RunResult:
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        saved = json.loads(metrics_path.read_text())
        diff = config_difference(saved["config"], config)
        if diff is None and saved["metrics"].get("threshold_percentile") != percentile:
            diff = f"threshold percentile: {saved['metrics'].get('threshold_percentile')} there, {percentile} now"
        if diff is not None:
            raise ConfigError(f"{run_dir}: holds a finished run with a different config ({diff}); "
                              f"use another --out or delete that folder")
        return RunResult(preset, seed_index, run_dir, saved["metrics"], reused=True)
    metrics = _train_and_evaluate(config, run_dir, splits, percentile)
    write_json_atomic(metrics_path, {"preset": preset, "seed": config["train"]["seed"], "metrics": metrics,
                                      "config": config, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return RunResult(preset, seed_index, run_dir, metrics, reused=False)


# -- table -----------------------------------------------------------------------------------
def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None


def aggregate(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per preset: ``<metric>_mean`` and ``<metric>_std`` (sample std over seeds) per metric."""
    rows = []
    for preset in dict.fromkeys(r.preset for r in results):
        runs = [r for r in results if r.preset == preset]
        row: dict[str, Any] = {"preset": preset, "seeds": len(runs)}
        for key, _, _ in METRICS:
            row[f"{key}_mean"], row[f"{key}_std"] = _mean_std([r.metrics.get(key) for r in runs])
        rows.append(row)
    return rows


def _fmt(key: str, mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    if key == "params":
        return f"{mean / 1e6:.2f} M" if mean >= 1e5 else f"{int(mean):,}"
    digits = 1 if key in ("train_seconds", "fps") else 3
    text = f"{mean:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def results_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table, mean ± sample standard deviation over seeds; best in bold."""
    head = ["preset", "seeds"] + [title for _, title, _ in METRICS]
    best: dict[str, float] = {}
    for key, _, higher in METRICS:
        vals = [r[f"{key}_mean"] for r in rows if r[f"{key}_mean"] is not None]
        if higher is not None and vals and len(rows) > 1:
            best[key] = max(vals) if higher else min(vals)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        cells = [str(r["preset"]), str(r["seeds"])]
        for key, _, _ in METRICS:
            text = _fmt(key, r[f"{key}_mean"], r[f"{key}_std"])
            cells.append(f"**{text}**" if key in best and r[f"{key}_mean"] == best[key] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: Sequence[Mapping[str, Any]], results: Sequence[RunResult], out: Path, *, data: str,
                 percentile: float) -> dict[str, Path]:
    """``results.md``, ``results.csv`` (one row per preset) and ``results.json`` (rows and every run)."""
    paths = {"markdown": out / "results.md", "csv": out / "results.csv", "json": out / "results.json"}
    paths["markdown"].write_text(
        f"# Comparison on `{data}`\n\nMean ± sample standard deviation over seeds. Precision, recall and F1 at "
        f"the threshold set at the {percentile:g}th percentile of scores on normal training frames.\n\n"
        + results_markdown(rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["preset"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths["csv"].write_text(buf.getvalue())
    write_json_atomic(paths["json"], {
        "data": data, "threshold_percentile": percentile, "presets": list(rows),
        "runs": [{"preset": r.preset, "seed_index": r.seed, "dir": str(r.dir), "metrics": r.metrics}
                 for r in results],
    })
    return paths


# -- plots and report ------------------------------------------------------------------------
def write_plots(results: Sequence[RunResult], splits: SplitCache, configs: Mapping[str, Mapping[str, Any]],
                out: Path) -> dict[str, Path]:
    """ROC curves (every run), score timelines (first seed of each preset), top frames per preset."""
    from . import plots

    plot_dir = out / "plots"
    files: dict[str, Path] = {}
    runs_by_preset: dict[str, list[RunResult]] = {}
    for r in results:
        runs_by_preset.setdefault(r.preset, []).append(r)
    loaded = {(r.preset, r.seed): load_run_scores(r.dir) for r in results}
    if all(s.labels is not None for s in loaded.values()):
        files["roc"] = plot_dir / "roc.png"
        plots.roc_curves({p: [(loaded[p, r.seed].labels, loaded[p, r.seed].scores) for r in runs]
                          for p, runs in runs_by_preset.items()}, files["roc"])
    first = next(iter(configs.values()))
    test = splits.get("testing", first)
    files["timelines"] = plot_dir / "timelines.png"
    plots.score_timelines({p: (loaded[p, runs[0].seed].frame, loaded[p, runs[0].seed].scores)
                           for p, runs in runs_by_preset.items()},
                          test.video_index, test.labels, test.names, files["timelines"])
    for preset, runs in runs_by_preset.items():
        videos = splits.get("testing", configs[preset])
        top = load_run_scores(runs[0].dir, videos, top_only=True)
        files[f"top_frames_{preset}"] = plot_dir / f"top_frames_{preset}.png"
        plots.top_frames_grid(top, videos, files[f"top_frames_{preset}"], k=8,
                              title=f"{preset} (seed {runs[0].seed}): highest-scoring test frames")
    return files


def write_report(comparison: Comparison, *, data: str, percentile: float) -> Path:
    """``report.md``: the table, links to the CSV/JSON and every plot."""
    out = comparison.out
    lines = [f"# memad comparison on `{data}`", "",
             f"{len(comparison.rows)} presets, {max((r['seeds'] for r in comparison.rows), default=0)} seed(s) each; "
             f"mean ± sample standard deviation over seeds. Frame AUROC pooled over all test frames and averaged "
             f"per video; precision/recall/F1 at the threshold set at the {percentile:g}th percentile of scores on "
             "normal training frames (with per-video normalised scores, the paper's, that threshold is relative "
             "to each video's range).", "",
             comparison.markdown(),
             "Files: [results.md](results.md), [results.csv](results.csv), [results.json](results.json); "
             "per run: `runs/<preset>/seed<k>/` (checkpoint.pt, scores.npz, metrics.json).", ""]
    titles = {"roc": "ROC curves (first seed solid, further seeds faint)",
              "timelines": "Anomaly scores per test video (first seed), ground-truth anomalies shaded"}
    for key, path in comparison.files.items():
        if path.suffix != ".png":
            continue
        title = titles.get(key, f"Highest-scoring test frames: {key.removeprefix('top_frames_')} "
                                "(error heatmap; ground-truth mask outlined in cyan)")
        lines += [f"## {title}", "", f"![{key}]({path.relative_to(out).as_posix()})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


# -- CLI -------------------------------------------------------------------------------------
@subcommand("compare")
def _setup_compare(p):
    """train and evaluate several presets on one dataset (over seeds): a table, plots and a report"""
    p.add_argument("presets", nargs="+", metavar="PRESET")
    p.add_argument("--data", required=True, help="dataset root (frame-folder layout) or 'synthetic'")
    p.add_argument("--seeds", type=int, default=1, help="runs per preset, seeds base+0, base+1, ... (default 1)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, help="base seed (default: each preset's train.seed)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--labels", help="label file for the test split (.npy or .mat)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--percentile", type=float,
                       help="deployment threshold: this percentile of normal training scores (default 99)")
    group.add_argument("--contamination", type=float, help="deployment threshold: fraction of normal frames flagged")
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.add_argument("--json", action="store_true", help="print results.json instead of the Markdown table")
    _add_set(p)

    def run(args) -> int:
        result = compare(args.presets, args.data, seeds=args.seeds, out=args.out, overrides=_overrides(args),
                         labels=args.labels, percentile=args.percentile, contamination=args.contamination,
                         plots=not args.no_plots)
        if args.json:
            print(result.files["json"].read_text())
        else:
            print(result.markdown(), end="")
        reused = sum(r.reused for r in result.runs)
        print(f"memad: {len(result.runs)} runs ({reused} reused) -> {result.out}; "
              f"report {result.files.get('report', result.files['markdown'])}", file=sys.stderr)
        return 0

    return run
