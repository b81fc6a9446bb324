"""Record the DMAD-PDM side by side (the official code against memad's dmad_pred on Ped2, same budget).

The side-by-side harness lives outside the repository, next to its copy of the official code (it drives the
official modules, which never enter memad); it writes ``<out>/results.json`` with one record per run (frame
AUROC, seconds per training step, the seed) and the cross-scoring (each side's per-frame signals scored by
both sides' rules). This script reads that file, summarises each side over its seeds, checks the acceptance
(memad's mean AUROC inside the official code's range over its seeds), writes
``benchmarks/results/dmad_side_by_side.json`` and puts the table into ``docs/models/dmad.md`` between its
markers.

    python benchmarks/dmad_side_by_side.py /work/ext/dmad_side_by_side/out_e2s15
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "models" / "dmad.md"
BEGIN, END = "<!-- dmad_side_by_side:begin -->", "<!-- dmad_side_by_side:end -->"


def summarise(harness: dict[str, Any]) -> dict[str, Any]:
    """Per side: AUROC per seed, mean, range and seconds per step; the acceptance check."""
    sides: dict[str, dict[str, Any]] = {}
    for run in harness["runs"]:
        side = sides.setdefault(run["model"], {"frame_auroc": {}, "s_per_step": {}, "test_s_per_frame": {}})
        side["frame_auroc"][str(run["seed"])] = run["frame_auroc"]
        side["s_per_step"][str(run["seed"])] = run["s_per_step"]
        side["test_s_per_frame"][str(run["seed"])] = run["test_s"] / run["test_frames"]
        side.update(steps=run["steps"], epochs=run["epochs"], batch=run["batch"], size=run["size"])
    for side in sides.values():
        aucs = list(side["frame_auroc"].values())
        side.update(auroc_mean=statistics.fmean(aucs), auroc_min=min(aucs), auroc_max=max(aucs),
                    s_per_step_mean=statistics.fmean(side["s_per_step"].values()))
    official, ours = sides.get("official DMAD-PDM"), sides.get("memad dmad_pred")
    accept = None
    if official and ours:
        accept = {"rule": "memad's mean frame AUROC within the official code's range over its seeds",
                  "official_range": [official["auroc_min"], official["auroc_max"]], "memad_mean": ours["auroc_mean"],
                  "passed": official["auroc_min"] <= ours["auroc_mean"] <= official["auroc_max"],
                  "gap_to_range": max(official["auroc_min"] - ours["auroc_mean"],
                                      ours["auroc_mean"] - official["auroc_max"], 0.0)}
    return {"sides": sides, "acceptance": accept}


def table(harness: dict[str, Any], summary: dict[str, Any]) -> str:
    """The Markdown table: one row per side, then the cross-scoring per run."""
    seeds = [str(s) for s in dict.fromkeys(r["seed"] for r in harness["runs"])]
    head = "| model | " + " | ".join(f"AUROC seed {s}" for s in seeds) + " | mean | s/step | test s/frame |"
    lines = [head, "|---|" + "---:|" * (len(seeds) + 3)]
    for name, side in summary["sides"].items():
        cells = [f"{side['frame_auroc'].get(s, float('nan')):.4f}" for s in seeds]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {side['auroc_mean']:.4f} | "
                     f"{side['s_per_step_mean']:.1f} | {statistics.fmean(side['test_s_per_frame'].values()):.2f} |")
    cross = harness.get("cross_scoring") or []
    if cross:
        lines += ["", "| run | official rule | memad rule | deformation alone | L1 error alone "
                      "| gradient error alone |", "|---|---:|---:|---:|---:|---:|"]
        for c in cross:
            lines.append(f"| {c['model']} seed {c['seed']} | {c['auroc_official_rule']:.4f} | "
                         f"{c['auroc_memad_rule']:.4f} | {c['auroc_deformation_alone']:.4f} | "
                         f"{c['auroc_recon_l1_alone']:.4f} | {c['auroc_gradient_error_alone']:.4f} |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu,
            "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def write_doc(text: str, doc: Path = DOC) -> bool:
    """Replace what is between the markers of ``doc`` with ``text``; False when the markers are missing."""
    body = doc.read_text()
    if BEGIN not in body or END not in body:
        return False
    head, rest = body.split(BEGIN, 1)
    doc.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("harness_out", type=Path, help="the harness's --out folder (holds results.json)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "dmad_side_by_side.json")
    parser.add_argument("--no-doc", action="store_true", help="do not write the table into docs/models/dmad.md")
    args = parser.parse_args(argv)
    harness = json.loads((args.harness_out / "results.json").read_text())
    summary = summarise(harness)
    md = table(harness, summary)
    record = {"what": "DMAD-PDM on UCSD Ped2, the official code against memad's dmad_pred at one CPU budget",
              "harness": harness["harness"], "harness_command": harness["command"], "order": harness["order"],
              "test_videos": harness["test_videos"], "memad_commit_run": harness["memad_commit"],
              "memad_dirty_run": harness["memad_dirty"], "recorded_with": environment(), **summary,
              "runs": [{k: v for k, v in r.items() if k != "history"} for r in harness["runs"]],
              "cross_scoring": harness.get("cross_scoring"), "table_md": md}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    if not args.no_doc and not write_doc(md):
        print(f"note: {DOC} has no {BEGIN} marker; the table was not written there")
    print(md)
    return record


if __name__ == "__main__":
    main()
