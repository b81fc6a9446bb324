"""Every ```python snippet in docs/ runs, at test scale, so the docs cannot drift from the code.

The snippets of one page run in order in one namespace (as a reader would paste them), in a fresh
folder holding what they name: ``runs/mine/checkpoint.pt`` (a calibrated checkpoint), a ``frames``
list, ``data/shanghaitech`` (a dataset in the standard layout) and ``path/to/bottle`` (an image
folder). ``memad.build`` applies test-scale overrides on top of the snippet's own (32x32 frames,
narrow layers, two steps an epoch), so what is checked is that every call exists and runs as the
page shows it, not the figures a full run would give. A snippet that needs an example plugin
names it in an HTML comment right above it: ``<!-- docs-test: plugin examples/... -->``.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import memad
from memad.data.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"(?:<!-- docs-test: plugin (?P<plugin>\S+) -->\n)?```python\n(?P<code>.*?)```", re.S)
SCALE = {"data.image_size": 32, "encoder.widths": [8, 16, 32, 64], "train.epochs": 1, "train.max_steps_per_epoch": 2,
         "train.progress": False, "train.device": "cpu"}


def _snippets(page: Path) -> list[tuple[str | None, str]]:
    return [(m.group("plugin"), m.group("code")) for m in BLOCK.finditer(page.read_text())]


PAGES = [p for p in DOCS if _snippets(p)]


def test_the_snippets_are_found():
    assert len(PAGES) >= 6 and sum(len(_snippets(p)) for p in PAGES) >= 15


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder holding what the snippets name, built once."""
    root = tmp_path_factory.mktemp("docs")
    det = memad.build("mnad_pred", **SCALE)
    det.fit("synthetic")
    det.calibrate("synthetic")
    det.save(root / "runs" / "mine" / "checkpoint.pt")
    write_synthetic(root / "data" / "shanghaitech", "jpg", masks=False)
    bottle = root / "path" / "to" / "bottle"
    for split, kinds in (("train", ["good"]), ("test", ["good", "crack"])):
        for kind in kinds:
            folder = bottle / split / kind
            folder.mkdir(parents=True)
            for i in range(6):
                img = np.full((32, 32, 3), 120 + i, np.uint8)
                if kind == "crack":
                    img[10:20, 15] = 20
                Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_snippets_run(page, workspace, tmp_path, monkeypatch):
    shutil.copytree(workspace, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    real_build = memad.build
    monkeypatch.setattr(memad, "build", lambda preset, **kw: real_build(preset, **{**kw, **SCALE}))
    frames = [f.permute(1, 2, 0).numpy() for f in memad.data.open_split(
        "synthetic", "testing", memad.config.make_config("mnad_pred", SCALE)).video(0).frames[:8]]
    namespace = {"__name__": f"docs_{page.stem}", "frames": frames}
    reg = memad.get_registry()
    saved = {kind: dict(entries) for kind, entries in reg._entries.items()}  # what the snippets register goes again
    try:
        for i, (plugin, code) in enumerate(_snippets(page)):
            if plugin is not None:
                _register_example(ROOT / plugin, monkeypatch)
            try:
                exec(compile(code, f"{page.relative_to(ROOT)} snippet {i + 1}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{page.relative_to(ROOT)}, snippet {i + 1} failed: {type(exc).__name__}: "
                                     f"{exc}\n{code}") from exc
    finally:
        reg._entries = saved


def _register_example(folder: Path, monkeypatch) -> None:
    """An example plugin package registered in this process, as its entry point would (no pip install)."""
    monkeypatch.syspath_prepend(str(folder))
    package = next(p.name for p in folder.iterdir() if p.is_dir() and (p / "plugin.py").is_file())
    module = importlib.import_module(f"{package}.plugin")
    module.memad_register(registry=memad.get_registry())
    sys.modules.pop(f"{package}.plugin", None)
