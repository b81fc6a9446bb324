"""A third-party plugin package, installed for real, reaches memad through its entry point;
a plugin that raises at import is reported without stopping the others."""

import fcntl
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import memad
from memad.cli import main as cli_main

from .conftest import tiny

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "topk_memory_plugin"
DIST = "memad-topk-memory 0.1.0"
TINY_SETS = ["data.image_size=32", "encoder.widths=[8,16,32,64]", "train.device=cpu", "train.max_steps_per_epoch=2",
             "train.progress=false", "test.mode=batched"]


def _env(**extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env.pop("MEMAD_PLUGINS", None)
    env.pop("MEMAD_DISABLE_PLUGINS", None)
    return env


def _install_topk() -> None:
    # pytest-xdist workers may each reach this fixture: one pip at a time in this environment.
    lock_path = Path(tempfile.gettempdir()) / f"memad-topk-install-{hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                 "-e", str(PACKAGE)], capture_output=True, text=True, timeout=300)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def topk_installed():
    _install_topk()
    # The editable install's import hook is set up at interpreter start; this process gets the path.
    sys.path.insert(0, str(PACKAGE))
    importlib.invalidate_caches()
    memad.reload_plugins()
    yield
    sys.path.remove(str(PACKAGE))
    memad.reload_plugins()


def test_installed_memory_builds_trains_and_scores(topk_installed):
    assert memad.list_components("memory")["topk"] == DIST
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 2}, test={"mode": "batched"}),
                      memory={"name": "topk", "items": 6, "k": 2, "init": "kmeans"})
    assert type(det.memory).__name__ == "TopKMemory" and not bool(det.memory.initialised)
    det.fit("synthetic")
    assert bool(det.memory.initialised)
    # each query's read mixes exactly k items
    q = torch.nn.functional.normalize(torch.randn(5, 64), dim=1)
    assert ((det.memory.read_weights(q) > 0).sum(dim=1) == 2).all()
    metrics = det.evaluate("synthetic")
    assert 0.0 <= metrics["frame_auroc"] <= 1.0


def test_installed_preset_is_listed(topk_installed):
    assert memad.get_registry().get("preset", "mnad_pred_topk").source == DIST
    det = memad.build("mnad_pred_topk", **tiny())
    assert det.memory.k == 3


def test_cli_uses_the_plugin_and_lists_its_distribution(topk_installed, tmp_path, capsys):
    cmd = [sys.executable, "-m", "memad", "train", "mnad_pred", "--data", "synthetic", "--out", str(tmp_path),
           "--epochs", "1", "--eval", "--json", "--set", "memory=topk", "--set", "memory.k=2"]
    for s in TINY_SETS:
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert 0.0 <= metrics["frame_auroc"] <= 1.0
    saved = memad.load(tmp_path / "checkpoint.pt")
    assert saved.config["memory"]["name"] == "topk" and saved.config["memory"]["k"] == 2
    assert saved.config["memory"]["update"] == {"name": "mnad", "normalise": "assigned"}  # its defaults written in
    assert type(saved.memory).__name__ == "TopKMemory"

    capsys.readouterr()
    assert cli_main(["list", "--json"]) == 0  # in this process: a fresh interpreter costs seconds
    info = json.loads(capsys.readouterr().out)
    assert info["components"]["memory"]["topk"] == DIST
    assert info["components"]["preset"]["mnad_pred_topk"] == DIST
    assert {"name": "topk", "source": DIST} in info["plugins"]


# -- a plugin that raises at import ----------------------------------------------------------
def _broken_distribution(root: Path) -> Path:
    """A minimal installed distribution whose memad entry point imports a module that raises."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "broken_memad_plugin.py").write_text('raise RuntimeError("this plugin is broken on purpose")\n')
    info = root / "broken_memad_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-memad-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[memad]\nbroken = broken_memad_plugin\n")
    return root


def test_plugin_failing_at_import_is_reported_in_process(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_broken_distribution(tmp_path)))
    try:
        with pytest.warns(UserWarning, match="'broken' from broken-memad-plugin 0.3 failed to load"):
            reg = memad.reload_plugins()
        failure = next(f for f in reg.failures if f.name == "broken")
        assert failure.source == "broken-memad-plugin 0.3"
        assert failure.error == "RuntimeError: this plugin is broken on purpose"
        # the others loaded, the new ones included
        assert {"mnad", "memae", "none"} <= set(memad.list_components("memory"))
        assert "timm" in memad.list_components("encoder") and "memae" in memad.list_presets()
    finally:
        monkeypatch.undo()
        memad.reload_plugins()


def test_plugin_failing_at_import_is_reported_by_memad_list(tmp_path, monkeypatch, capsys):
    root = _broken_distribution(tmp_path / "site")
    env = _env(PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    as_json = subprocess.run([sys.executable, "-m", "memad", "list", "--json"], capture_output=True, text=True,
                             timeout=120, env=env, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    info = json.loads(as_json.stdout)
    assert {"name": "broken", "source": "broken-memad-plugin 0.3",
            "error": "RuntimeError: this plugin is broken on purpose"} in info["failed"]
    assert info["components"]["memory"]["memae"].startswith("memad ")
    assert "mnad_pred_resnet18" in info["components"]["preset"]
    monkeypatch.syspath_prepend(str(root))
    try:
        with pytest.warns(UserWarning):
            memad.reload_plugins()
        capsys.readouterr()
        assert cli_main(["list"]) == 0
        text = capsys.readouterr().out
        assert "broken [broken-memad-plugin 0.3]: RuntimeError: this plugin is broken on purpose" in text
        assert "  memae " in text and "  mnad_pred_resnet18 " in text
    finally:
        monkeypatch.undo()
        memad.reload_plugins()
