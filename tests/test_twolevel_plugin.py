"""The two-level example package, installed for real: a memory reading two encoder levels
whose reads reach the decoder at both, and a new per-frame signal (``skip_distance``) that
reaches ``Scores.stats`` and the package's own scorer; all with no edit to memad."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import memad
from memad.cli import main as cli_main

from .conftest import tiny

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "twolevel_memory_plugin"
DIST_NAME, VERSION = "memad-twolevel-memory", "0.1.0"
DIST = f"{DIST_NAME} {VERSION}"
ENTRY_POINTS = {"twolevel": "memad_twolevel.plugin"}  # the package's pyproject.toml, [project.entry-points.memad]
TINY = tiny(train={"max_steps_per_epoch": 3}, test={"mode": "batched"})


@contextlib.contextmanager
def _pip_lock(exclusive: bool) -> Iterator[None]:
    """The lock tests/test_plugin_package.py takes around its pip run (same file): one pip at a time
    in this environment, and no pip rewriting site-packages while a worker reads the entry points."""
    digest = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"memad-topk-install-{digest}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed_from_here() -> bool:
    """True when this environment holds the editable install of PACKAGE with the metadata expected here.

    Then pip is skipped: a reinstall would remove the distribution's metadata for a moment,
    under another xdist worker that is using the plugin.
    """
    importlib.invalidate_caches()
    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        return False
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    entry_points = {ep.name: ep.value for ep in dist.entry_points if ep.group == "memad"}
    return (url.get("url") == PACKAGE.as_uri() and url.get("dir_info", {}).get("editable") is True
            and dist.version == VERSION and entry_points == ENTRY_POINTS)


@pytest.fixture(scope="module")
def twolevel_installed():
    with _pip_lock(exclusive=True):
        if not _installed_from_here():
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                 "-e", str(PACKAGE)], check=False, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
        # The editable install's import hook is set up at interpreter start; this process gets the path.
        sys.path.insert(0, str(PACKAGE))
        importlib.invalidate_caches()
        memad.reload_plugins()
    yield
    sys.path.remove(str(PACKAGE))
    with _pip_lock(exclusive=False):
        memad.reload_plugins()


def _per_video_minmax(values: np.ndarray, video: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values))
    for v in np.unique(video):
        sel = video == v
        lo, hi = values[sel].min(), values[sel].max()
        out[sel] = (values[sel] - lo) / (hi - lo) if hi > lo else 0.0
    return out


# -- the memory on a case computed by hand ---------------------------------------------------
def test_memory_reads_distances_losses_and_writes_by_hand(twolevel_installed):
    from memad_twolevel import TwoLevelMemory

    # levels given deepest first: the memory orders them shallowest first, as the detector passes the maps
    mem = TwoLevelMemory(encoder_channels=[2, 3, 2], levels=[-1, 0], items=2, temperature=0.5,
                         compactness=0.1, separateness=0.1, update={"name": "ema", "momentum": 0.5})
    assert mem.levels == (0, 2) and mem.multilevel and mem.writes
    assert mem.decoder_channels([2, 3, 2]) == [2, 3, 2]  # reads keep the channels
    mem.skip_items = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mem.items = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # shallow: two positions, queries [.6, .8] and [0, 1]; deep: one position, query [.8, .6]
    shallow = torch.tensor([[3.0, 0.0], [4.0, 2.0]]).reshape(1, 2, 1, 2)
    deep = torch.tensor([4.0, 3.0]).reshape(1, 2, 1, 1)
    out = mem([shallow, deep])

    def two_way_softmax(a: float, b: float) -> list[float]:  # softmax([a, b] / temperature)
        first = 1 / (1 + math.exp((b - a) / 0.5))
        return [first, 1 - first]

    # the read of one position is its softmax weights over the unit items: the weights themselves
    skip_read, deep_read = out.read
    assert torch.allclose(skip_read[0, :, 0, 0], torch.tensor(two_way_softmax(0.6, 0.8)))
    assert torch.allclose(skip_read[0, :, 0, 1], torch.tensor(two_way_softmax(0.0, 1.0)))
    assert torch.allclose(deep_read[0, :, 0, 0], torch.tensor(two_way_softmax(0.8, 0.6)))
    # squared distances to the nearest item, averaged over positions and channels:
    # shallow ([.6,.8]-[0,1])^2 = .36+.04, ([0,1]-[0,1])^2 = 0 over 4 values; deep ([.8,.6]-[1,0])^2 = .04+.36 over 2
    assert torch.allclose(out.signals["skip_distance"], torch.tensor([0.40 / 4]))
    assert torch.allclose(out.signals["distance"], torch.tensor([0.40 / 2]))
    assert out.distance is out.signals["distance"]
    # triplet terms: nearest at sqrt(.4), other item at sqrt(.8); the exact query is 1 - sqrt(2) < 0 -> 0
    triplet = math.sqrt(0.4) - math.sqrt(0.8) + 1.0
    assert math.isclose(out.logs["skip_separate"].item(), triplet / 2, rel_tol=1e-5)
    assert math.isclose(out.logs["separate"].item(), triplet, rel_tol=1e-5)
    expected_loss = 0.1 * (0.10 + 0.20) + 0.1 * (triplet / 2 + triplet)
    assert math.isclose(out.loss.item(), expected_loss, rel_tol=1e-5)

    # a write the gate refuses changes nothing; an accepted one moves each level's chosen item
    mem.write(out.query, keep=torch.tensor([False]))
    assert torch.equal(mem.skip_items, torch.eye(2)) and torch.equal(mem.items, torch.eye(2))
    mem.write(out.query)
    # ema 0.5: shallow item 1 <- norm(.5 [0,1] + .5 mean([.6,.8], [0,1])) = norm([.15, .95])
    assert torch.allclose(mem.skip_items, torch.tensor([[1.0, 0.0], [0.15, 0.95]]) / torch.tensor([[1.0], [0.925**0.5]]))
    assert torch.allclose(mem.items, torch.tensor([[0.9, 0.3], [0.0, 1.0]]) / torch.tensor([[0.9**0.5], [1.0]]))


@pytest.mark.parametrize("levels,message", [
    ([-1], r"memory.levels: expected two encoder levels, got \[-1\]"),
    ([0, 4], r"memory.levels: memory level 4: the encoder returns 4 maps"),
    ([1, -3], r"memory.levels: memory levels \[1, -3\] name one level twice"),
])
def test_bad_levels_are_config_errors(twolevel_installed, levels, message):
    with pytest.raises(memad.ConfigError, match=message):
        memad.build("mnad_pred_twolevel", **tiny(), memory={"levels": levels})


# -- installed: listed, built, trained, scored ------------------------------------------------
def test_memad_list_shows_the_package(twolevel_installed, tmp_path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MEMAD_PLUGINS", None)
    env.pop("MEMAD_DISABLE_PLUGINS", None)
    with _pip_lock(exclusive=False):  # a fresh interpreter, as a user gets it
        done = subprocess.run([sys.executable, "-m", "memad", "list", "--json"], check=False, capture_output=True,
                              text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["components"]["memory"]["twolevel"] == DIST
    assert info["components"]["scorer"]["twolevel"] == DIST
    assert info["components"]["preset"]["mnad_pred_twolevel"] == DIST
    assert {"name": "twolevel", "source": DIST} in info["plugins"]
    assert not [f for f in info["failed"] if f["name"] == "twolevel"]

    capsys.readouterr()
    assert cli_main(["list"]) == 0  # the text listing, in this process
    lines = capsys.readouterr().out.splitlines()
    for start in ("  twolevel ", "  mnad_pred_twolevel "):
        assert any(line.startswith(start) and f"[{DIST}]" in line for line in lines), start


def test_preset_trains_scores_and_the_signal_reaches_the_scorer(twolevel_installed, tmp_path):
    det = memad.build("mnad_pred_twolevel", **TINY)
    assert type(det.memory).__name__ == "TwoLevelMemory" and type(det.scorer).__name__ == "TwoLevelScorer"
    assert det.memory_levels == [2, 3] and det.memory.writes
    before = det.memory.skip_items.clone(), det.memory.items.clone()
    det.fit("synthetic")
    # the training loop wrote both levels' queries
    assert not torch.allclose(det.memory.skip_items, before[0]) and not torch.allclose(det.memory.items, before[1])

    seen: list[torch.Tensor] = []
    hook = det.memory.register_forward_hook(lambda m, args, out: seen.append(out.signals["skip_distance"].clone()))
    try:
        scores = det.score("synthetic")
    finally:
        hook.remove()
    stats = scores.stats
    assert {"psnr", "mse", "distance", "skip_distance"} <= set(stats.names)
    # what the memory returned for each clip is the frame's signal, in order
    np.testing.assert_allclose(stats["skip_distance"], torch.cat(seen).double().numpy(), rtol=1e-6)

    # the scorer's formula, by hand from the raw signals: 0.7 [0.6 (1 - g(psnr)) + 0.4 g(D)] + 0.3 g(D_skip)
    g = {name: _per_video_minmax(stats[name], stats.video) for name in ("psnr", "distance", "skip_distance")}
    by_hand = 0.7 * (0.6 * (1 - g["psnr"]) + 0.4 * g["distance"]) + 0.3 * g["skip_distance"]
    np.testing.assert_allclose(scores.scores, by_hand, atol=1e-12)
    # its weight moves the scores; at 0 the scorer is the paper's (memad's own `mnad` scorer)
    scorer = memad.get_registry().get("scorer", "twolevel").obj
    without = scorer(weight=0.6, skip_weight=0.0)(stats)
    mnad = memad.get_registry().get("scorer", "mnad").obj(weight=0.6)(stats)
    np.testing.assert_allclose(without, mnad, atol=1e-12)
    assert np.abs(without - scores.scores).max() > 1e-3
    np.testing.assert_allclose(scorer(skip_weight=1.0)(stats), g["skip_distance"], atol=1e-12)
    assert 0.0 <= scores.metrics()["frame_auroc"] <= 1.0

    # saved and loaded: items of both levels and the scorer come back (the package named by the config)
    loaded = memad.load(det.save(tmp_path / "twolevel.pt"))
    assert torch.equal(loaded.memory.skip_items, det.memory.skip_items)
    assert torch.equal(loaded.memory.items, det.memory.items)
    assert loaded.scorer.config() == {"weight": 0.6, "skip_weight": 0.3, "normalise": "video"}


def test_both_levels_reads_reach_the_decoder(twolevel_installed):
    # Train mode: the decoder's BatchNorms scale what they get by the batch's own statistics, so
    # an untrained model's initial running statistics do not shrink a read's effect to noise.
    det = memad.build("mnad_pred_twolevel", **tiny()).train()
    x = torch.rand(2, 12, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got: dict[str, object] = {}
    hooks = [det.memory.register_forward_hook(lambda m, args, out: got.update(memory=out)),
             det.decoder.register_forward_hook(lambda m, args, out: got.update(decoder=args))]
    with torch.no_grad():
        base = det(x).output
    for h in hooks:
        h.remove()
    skips, bottleneck = got["decoder"]
    skip_read, deep_read = got["memory"].read
    # the decoder got the reads themselves at levels 2 and 3, the encoder's maps at 0 and 1
    assert skips[2] is skip_read and bottleneck is deep_read
    assert [s.shape[1] for s in skips] == [8, 16, 32] and bottleneck.shape[1] == 64

    def zero_read(level: int):
        def hook(module, args, out):
            out.read[level] = torch.zeros_like(out.read[level])
            return out
        return hook

    with torch.no_grad():
        assert torch.equal(det(x).output, base)  # deterministic: a change below is the zeroed read's
        for level in (0, 1):
            h = det.memory.register_forward_hook(zero_read(level))
            try:
                changed = det(x).output
            finally:
                h.remove()
            assert (changed - base).abs().max() > 0.05, f"zeroing read {level} left the output unchanged"


def test_scorer_names_the_signal_a_model_lacks(twolevel_installed):
    # memad's `mnad` memory reports `distance` but no `skip_distance`: the scorer's `requires` is checked when the
    # detector is built, before any training, naming the scorer's distribution and the signals the model has.
    with pytest.raises(memad.ConfigError, match="scorer 'twolevel' \\(memad-twolevel-memory 0.1.0\\) requires "
                                                "signal\\(s\\) 'skip_distance', which no part of this model produces "
                                                "\\(it has contrast, distance, mse, psnr\\)"):
        memad.build("mnad_pred", **TINY, scorer="twolevel")
