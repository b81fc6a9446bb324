"""benchmarks/dmad_side_by_side.py: the per-side summary, the acceptance rule and the doc markers, on a made-up
harness output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    return load_script("benchmarks/dmad_side_by_side.py", "dmad_sbs")


def _run(model, seed, auc, s_step):
    return {"model": model, "seed": seed, "frame_auroc": auc, "s_per_step": s_step, "test_s": 10.0,
            "test_frames": 5, "steps": 30, "epochs": 2, "batch": 8, "size": 256}


def _harness(memad_aucs):
    runs = [_run("memad dmad_pred", 1, memad_aucs[0], 40.0), _run("official DMAD-PDM", 1, 0.80, 50.0),
            _run("official DMAD-PDM", 2, 0.90, 52.0), _run("memad dmad_pred", 2, memad_aucs[1], 42.0)]
    return {"harness": "run.py", "command": "python run.py", "order": [], "test_videos": ["01"],
            "memad_commit": "abc", "memad_dirty": False, "runs": runs, "cross_scoring": []}


def test_summary_and_acceptance(script):
    inside = script.summarise(_harness([0.84, 0.88]))
    side = inside["sides"]["memad dmad_pred"]
    assert side["auroc_mean"] == pytest.approx(0.86) and side["s_per_step_mean"] == pytest.approx(41.0)
    assert side["test_s_per_frame"] == {"1": 2.0, "2": 2.0}
    assert inside["acceptance"]["passed"] and inside["acceptance"]["official_range"] == [0.80, 0.90]
    below = script.summarise(_harness([0.70, 0.74]))["acceptance"]
    assert not below["passed"] and below["gap_to_range"] == pytest.approx(0.08)


def test_results_file_and_doc_table(script, tmp_path):
    out = tmp_path / "harness"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(_harness([0.84, 0.88])))
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{script.BEGIN}\nold\n{script.END}\nafter\n")
    record = script.main([str(out), "--results", str(tmp_path / "r.json"), "--no-doc"])
    assert json.loads((tmp_path / "r.json").read_text())["acceptance"]["passed"] == record["acceptance"]["passed"]
    assert script.write_doc(record["table_md"], doc)
    text = doc.read_text()
    assert "old" not in text and "| memad dmad_pred | 0.8400 | 0.8800 | 0.8600 | 41.0 | 2.00 |" in text
    assert text.startswith("before\n") and text.endswith(f"{script.END}\nafter\n")
