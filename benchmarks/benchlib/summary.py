"""The Ped2 summary of the results page: tables and a plot from every ``results/ped2_*.json``, written
between the ``bench-summary`` markers of ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from memad.errors import MemadError

from .environment import DOC, RESULTS

BEGIN = "<!-- BEGIN bench-summary"
END = "<!-- END bench-summary -->"


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


