"""The plugin contract, checked when a detector is built: each mistake a plugin author makes is named with
the component, the distribution it came from, what it declared and what came back — before any training.

The broken components come from a distribution of the tests' own, ``memad-brokenparts 0.2``, installed on
``sys.path`` for the test (a dist-info folder with a ``memad`` entry point), so the messages carry a real
distribution name as a user's plugin would.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

import memad
from memad.cli import main as cli_main

from .conftest import tiny

DIST = "memad-brokenparts 0.2"

PLUGIN = '''
import torch
import torch.nn.functional as F
import memad
from memad import Memory, MemoryOutput, Scorer


class _Base(Memory):
    """Reads the features through unchanged (a pass-through), with one mistake per subclass."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.dim = in_channels

    def out_channels(self, in_channels):
        return in_channels

    def _out(self, read, features, **signals):
        return MemoryOutput(read=read, loss=features.new_zeros(()), signals=signals)


class WrongChannels(_Base):
    """A read with one channel more than out_channels declares."""

    def forward(self, f):
        return self._out(torch.cat([f, f[:, :1]], 1), f)


class WrongSize(_Base):
    """A read at half the spatial size of the features."""

    def forward(self, f):
        return self._out(F.avg_pool2d(f, 2), f)


class OneTensor(_Base):
    """Multilevel, but returns one tensor instead of a list of reads."""

    multilevel = True
    levels = (-2, -1)

    def forward(self, maps):
        return MemoryOutput(read=maps[-1], loss=maps[-1].new_zeros(()))


class PerPosition(_Base):
    """A per-position distance map (B, h, w) instead of one value per sample."""

    def forward(self, f):
        return self._out(f, f, distance=f.pow(2).mean(1).detach())


class Column(_Base):
    """A (B, 1) signal."""

    def forward(self, f):
        return self._out(f, f, distance=f.pow(2).flatten(1).mean(1, keepdim=True).detach())


class Attached(_Base):
    """A signal still attached to the autograd graph."""

    def forward(self, f):
        return self._out(f, f, distance=f.pow(2).flatten(1).mean(1))


class Branchy(_Base):
    """Data-dependent Python control flow in forward: fine in PyTorch, not traceable."""

    def forward(self, f):
        if bool((f > 0).any()):
            f = f * 1.0
        return self._out(f, f, distance=f.pow(2).flatten(1).mean(1).detach())


class NeedsGhost(Scorer):
    """Requires a signal no part produces."""

    requires = ("ghost",)

    def __call__(self, stats):
        return stats["ghost"]


@memad.hookimpl
def memad_register(registry):
    for name, cls in [("wrong_channels", WrongChannels), ("wrong_size", WrongSize), ("one_tensor", OneTensor),
                      ("per_position", PerPosition), ("column", Column), ("attached", Attached),
                      ("branchy", Branchy)]:
        registry.add("memory", name, cls)
    registry.add("scorer", "needs_ghost", NeedsGhost)
'''


def _distribution(root: Path, module: str, source: str, dist: str = "memad_brokenparts", version: str = "0.2") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[memad]\n{module} = {module}\n")
    return root


@pytest.fixture(scope="module")
def broken_parts(tmp_path_factory):
    root = _distribution(tmp_path_factory.mktemp("site"), "brokenparts", PLUGIN)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    memad.reload_plugins()
    yield
    mp.undo()
    memad.reload_plugins()


def _build(memory: str, **kw):
    return memad.build("mnad_recon", **tiny(memory={"name": memory}, scorer={"name": "psnr"}, **kw))


@pytest.mark.parametrize("memory, message", [
    ("wrong_channels", "memory 'wrong_channels' (memad-brokenparts 0.2): the read at level 3 has shape (2, 65, 4, 4); "
                       "out_channels(64) declares 64 channels, expected (2, 64, 4, 4)"),
    ("wrong_size", "memory 'wrong_size' (memad-brokenparts 0.2): the read at level 3 is (2, 2) spatially, the features "
                   "it read (4, 4); a read keeps its level's size"),
    ("one_tensor", "memory 'one_tensor' (memad-brokenparts 0.2): multilevel = True, so read must be a list of 2 tensors "
                   "(one per level [2, 3]), got Tensor"),
    ("per_position", "memory 'per_position' (memad-brokenparts 0.2): signal 'distance' must be one value per sample, "
                     "shape (2,), got (2, 4, 4)"),
    ("column", "memory 'column' (memad-brokenparts 0.2): signal 'distance' must be one value per sample, shape (2,), "
               "got (2, 1)"),
    ("attached", "memory 'attached' (memad-brokenparts 0.2): signal 'distance' is attached to the autograd graph"),
])
def test_a_part_that_breaks_its_declarations_is_named_at_build(broken_parts, memory, message):
    # The check runs on a tiny input first and reports at the configured size (32x32: a 4x4 bottleneck).
    with pytest.raises(memad.ConfigError, match=re.escape(message)):
        _build(memory)


def test_a_scorer_requiring_a_signal_no_part_produces_is_named_at_build(broken_parts):
    with pytest.raises(memad.ConfigError, match=r"scorer 'needs_ghost' \(memad-brokenparts 0.2\) requires signal\(s\) "
                                                r"'ghost', which no part of this model produces \(it has contrast, "
                                                r"distance, mse, psnr\)"):
        memad.build("mnad_recon", **tiny(scorer={"name": "needs_ghost"}))


def test_the_check_leaves_the_random_state_and_the_memory_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    det = memad.build("mnad_pred", **tiny())
    assert torch.equal(torch.rand(3), expected)  # build forks the generator around init and the check
    again = memad.build("mnad_pred", **tiny())
    assert torch.equal(det.memory.items, again.memory.items)
    assert all(torch.equal(a, b) for a, b in zip(det.state_dict().values(), again.state_dict().values()))


def test_a_checkpoint_whose_component_is_not_installed_names_the_package(broken_parts, tmp_path):
    # A valid component of the test distribution, saved while it is installed...
    ok = memad.build("mnad_recon", **tiny(memory={"name": "branchy"}, scorer={"name": "psnr"}))
    path = ok.save(tmp_path / "branchy.pt")
    assert memad.load(path).config["memory"]["name"] == "branchy"
    # ...then loaded where the distribution is gone.
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMAD_DISABLE_PLUGINS", "brokenparts")
    memad.reload_plugins()
    try:
        with pytest.raises(memad.CheckpointError, match=r"needs memory 'branchy' \(memory\), which is not registered: "
                                                        r"pip install memad-brokenparts \(the checkpoint was saved "
                                                        r"with memad-brokenparts 0.2\)"):
            memad.load(path)
    finally:
        mp.undo()
        memad.reload_plugins()


@pytest.mark.parametrize("hook, problem", [
    ("memad_regster", "hook 'memad_regster' is not a memad hook; did you mean 'memad_register'? (hooks: "
                      "memad_register)"),
    ("memad_register_unmarked", "memad_register is not marked @memad.hookimpl, so memad would ignore it"),
])
def test_a_misspelt_or_unmarked_hook_is_reported_with_its_distribution_and_the_others_load(tmp_path, hook, problem,
                                                                                           capsys):
    if hook == "memad_regster":
        source = "import memad\n\n@memad.hookimpl\ndef memad_regster(registry):\n    pass\n"
    else:
        source = "def memad_register(registry):\n    registry.add('scorer', 'never_seen', object)\n"
    module = f"typoplugin_{hook}"  # a module name of its own: the other case's is cached in sys.modules
    root = _distribution(tmp_path / "site", module, source, dist="memad_typo", version="1.4")
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    try:
        with pytest.warns(UserWarning, match=f"memad plugin '{module}' from memad-typo 1.4 failed to load"):
            reg = memad.reload_plugins()
        failure = next(f for f in reg.failures if f.name == module)
        assert failure.source == "memad-typo 1.4" and failure.error == problem
        assert {"mnad", "memae", "none"} <= set(memad.list_components("memory"))  # the others loaded
        memad.build("mnad_recon", **tiny())  # and building works
        capsys.readouterr()
        assert cli_main(["list"]) == 0
        assert f"{module} [memad-typo 1.4]: {problem}" in capsys.readouterr().out
    finally:
        mp.undo()
        memad.reload_plugins()


def test_every_update_rule_returns_the_items_unchanged_for_no_queries():
    items = torch.nn.functional.normalize(torch.rand(5, 8), dim=1)
    empty = torch.zeros(0, 8)
    for name in memad.list_components("update_rule"):
        rule = memad.build_component("update_rule", name)
        assert torch.equal(rule(items.clone(), empty), items), name


def test_a_gated_out_chunk_leaves_the_items_as_they_were():
    # Batched scoring writes a chunk's gated frames: when the gate keeps none, nothing moves (mnad_code raised).
    det = memad.build("mnad_pred", **tiny(memory={"update": "mnad_code"}))
    before = det.memory.items.clone()
    query = torch.nn.functional.normalize(torch.rand(3, 64, 2, 2), dim=1)
    det.memory.write(query, keep=torch.zeros(3, dtype=torch.bool))
    assert torch.equal(det.memory.items, before)


def test_the_run_config_holds_every_component_default(tmp_path):
    det = memad.build("mnad_pred", **tiny(train={"epochs": 1, "max_steps_per_epoch": 1, "progress": False}))
    det.fit("synthetic", out=tmp_path)
    written = memad.config.yaml.safe_load((tmp_path / "config.yaml").read_text())
    memory = written["memory"]
    assert memory["margin"] == 1.0 and memory["detach_weights"] is True
    assert memory["update"] == {"name": "mnad", "normalise": "assigned"}
    assert written["scorer"]["name"] == "mnad" and "weight" in written["scorer"]
    assert memad.config.validate(written) == written  # complete: validating it adds nothing


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_memory_with_data_dependent_control_flow_is_named_in_one_line_by_both_exporters(broken_parts, tmp_path):
    det = memad.build("mnad_recon", **tiny(memory={"name": "branchy"}, scorer={"name": "psnr"}))
    det.calibrate("synthetic")  # untrained: the export's check needs a calibration, not a good model
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(memad.ConfigError) as info:
            det.export(tmp_path / f"b.{fmt}", fmt)
        text = str(info.value)
        assert "\n" not in text
        assert f"--format {fmt}: memory 'branchy': Branchy.forward (brokenparts.py:" in text, text
        assert "what makes a component exportable" in text
        assert not (tmp_path / f"b.{fmt}").exists()


def test_export_without_the_deploy_extras_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    det = memad.build("ae", **tiny())
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(memad.ConfigError, match=r'--format onnx needs onnxscript, which are not installed: pip install '
                                                r'"memad\[deploy\]"'):
        det.export(tmp_path / "ae.onnx")


def test_docs_state_the_export_and_update_rule_contracts():
    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    assert "## What makes a component exportable" in text
    assert "no queries" in textwrap.dedent(text)
