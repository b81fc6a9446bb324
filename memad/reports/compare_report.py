"""The files of a comparison: results table (Markdown, CSV, JSON), plots and the report page."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data import SplitCache, VideoSet
from ..fileio import atomic_write, write_json_atomic, write_text_atomic
from ..interfaces import FrameStats

__all__ = ["METRICS", "RunResult", "Comparison", "aggregate", "results_markdown", "save_run_scores", "load_run_scores",
           "write_tables", "write_plots", "write_report"]

_PROTOCOL = ("Mean ± sample standard deviation over seeds. Frame AUROC: the paper's protocol, scores min-max "
             "normalised within each test video; in brackets its 95% bootstrap interval over test videos (each "
             "run's bounds averaged over seeds). AUROC per video: videos of one class left out; padded: every "
             "video given a dummy normal and anomalous frame, as the papers reporting the macro AUROC do. "
             "Calibrated AUROC: the same scorer on signals normalised with the "
             "ranges learned on normal training frames, so a score means the same on every video; precision, recall, "
             "F1 and the false-alarm rate on normal test frames at the calibrated threshold, which lets {far:.1%} of "
             "normal training frames through, and there the events memad detect would raise: the share of "
             "ground-truth events detected, false alarm events per 1,000 normal test frames and the detection delay "
             "in frames. RBDC/TBDC: region- and track-based detection criteria of the error maps. Definitions: "
             "docs/metrics.md.")

#: Table columns: key in a run's metrics, heading, whether higher is better (None: neither).
METRICS: tuple[tuple[str, str, bool | None], ...] = (
    ("frame_auroc", "frame AUROC [95% CI]", True),
    ("frame_auroc_macro", "AUROC per video", True),
    ("frame_auroc_macro_pad", "AUROC per video (padded)", True),
    ("calibrated_frame_auroc", "calibrated AUROC", True),
    ("aupr", "AUPR", True),
    ("eer", "EER", False),
    ("pixel_auroc", "pixel AUROC", True),
    ("rbdc", "RBDC", True),
    ("tbdc", "TBDC", True),
    ("precision", "precision@thr", True),
    ("recall", "recall@thr", True),
    ("f1", "F1@thr", True),
    ("false_alarm_rate", "false alarms@thr", False),
    ("event_recall", "event recall@thr", True),
    ("false_alarms_per_1000", "false alarm events/1k normal frames@thr", False),
    ("delay_median", "delay median (frames)@thr", False),
    ("delay_p90", "delay p90 (frames)@thr", False),
    ("params", "parameters", None),
    ("train_seconds", "train s", None),
    ("fps", "test frames/s", None),
)


# -- table -----------------------------------------------------------------------------------
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
def save_run_scores(path: Path, scores) -> None:
    """A run's test scores, signals and top error maps as ``scores.npz`` (atomically)."""
    top = np.argsort(-scores.scores, kind="stable")[:TOP_MAPS]
    arrays: dict[str, np.ndarray] = {
        "scores": scores.scores, "frame": scores.frame, "video": scores.video, "top": top,
        "video_names": np.array(scores.video_names),
        **{f"signal_{k}": v for k, v in scores.stats.signals.items()},
    }
    if scores.calibrated is not None:
        arrays["calibrated"] = scores.calibrated
    if scores.labels is not None:
        arrays["labels"] = scores.labels
    if scores.maps is not None:  # scoring keeps the top frames' maps (Scores.map_frames)
        found = [(i, j) for i in top.tolist() if (j := scores.map_index(i)) is not None]
        arrays["top"] = np.array([i for i, _ in found], dtype=np.int64)
        arrays["top_maps"] = scores.maps[torch.tensor([j for _, j in found], dtype=torch.long)].half().numpy()
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def load_run_scores(run_dir: str | Path, videos: VideoSet | None = None, *, top_only: bool = False):
    """A run's saved test scores as :class:`memad.evaluation.Scores`.

    With ``top_only``, only the highest-scoring frames whose error maps were kept are
    returned, with those maps (and, given the test ``videos``, their masks): what
    :func:`memad.plots.top_frames_grid` needs.
    """
    from ..scoring.runner import Scores

    with np.load(Path(run_dir) / "scores.npz", allow_pickle=False) as npz:
        arr = {k: npz[k] for k in npz.files}
    sel = arr["top"] if top_only else np.arange(len(arr["scores"]))
    labels = arr["labels"][sel] if "labels" in arr else None
    maps = torch.from_numpy(arr["top_maps"]) if top_only and "top_maps" in arr else None
    masks = None
    if top_only and videos is not None and videos.masks is not None:
        masks = videos.masks[torch.from_numpy(arr["frame"][sel])]
    stats = FrameStats(arr["video"][sel], {k.removeprefix("signal_"): v[sel] for k, v in arr.items()
                                           if k.startswith("signal_")})
    return Scores(scores=arr["scores"][sel], frame=arr["frame"][sel], video=arr["video"][sel], labels=labels,
                  stats=stats, maps=maps, masks=masks, video_names=[str(n) for n in arr["video_names"]], seconds=0.0,
                  calibrated=arr["calibrated"][sel] if "calibrated" in arr else None)


# -- one run ---------------------------------------------------------------------------------


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
        # The bootstrap interval of each run's frame AUROC: its bounds averaged over seeds.
        intervals = [r.metrics["frame_auroc_ci95"] for r in runs if r.metrics.get("frame_auroc_ci95")]
        row["frame_auroc_ci95_mean"] = [float(np.mean([c[0] for c in intervals])),
                                        float(np.mean([c[1] for c in intervals]))] if intervals else None
        scenes = [r.metrics["frame_auroc_per_scene"] for r in runs if r.metrics.get("frame_auroc_per_scene")]
        row["frame_auroc_per_scene_mean"] = {
            scene: _mean_std([s.get(scene) for s in scenes])[0] for scene in dict.fromkeys(k for s in scenes for k in s)
        } if scenes else None
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
            text = f"**{text}**" if key in best and r[f"{key}_mean"] == best[key] else text
            interval = r.get(f"{key}_ci95_mean")
            cells.append(f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: Sequence[Mapping[str, Any]], results: Sequence[RunResult], out: Path, *, data: str,
                 false_alarm_rate: float) -> dict[str, Path]:
    """``results.md``, ``results.csv`` (one row per preset) and ``results.json`` (rows and every run)."""
    paths = {"markdown": out / "results.md", "csv": out / "results.csv", "json": out / "results.json"}
    write_text_atomic(
        paths["markdown"], f"# Comparison on `{data}`\n\n{_PROTOCOL.format(far=false_alarm_rate)}\n\n"
        + results_markdown(rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["preset"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(paths["csv"], buf.getvalue())
    write_json_atomic(paths["json"], {
        "data": data, "false_alarm_rate": false_alarm_rate, "presets": list(rows),
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


def write_report(comparison: Comparison, *, data: str, false_alarm_rate: float) -> Path:
    """``report.md``: the table, links to the CSV/JSON and every plot."""
    out = comparison.out
    lines = [f"# memad comparison on `{data}`", "",
             f"{len(comparison.rows)} presets, {max((r['seeds'] for r in comparison.rows), default=0)} seed(s) each; "
             f"mean ± sample standard deviation over seeds. Frame AUROC pooled over all test frames and averaged "
             f"per video. {_PROTOCOL.format(far=false_alarm_rate)}", "",
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
    return write_text_atomic(out / "report.md", "\n".join(lines))


