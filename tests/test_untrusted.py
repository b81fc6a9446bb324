"""Untrusted files: checkpoints and YAML never run code; broken or corrupt files give a clear error;
plugins can be switched off or allow-listed, and one that fails does not stop the others."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import memad
from memad import CheckpointError, ConfigError
from memad.checkpoint import FORMAT, VERSION, read_checkpoint
from memad.cli import main as cli_main
from memad.config import parse_assignment
from memad.registry import Registry

from .conftest import tiny

REPO = Path(__file__).resolve().parents[1]


class WritesMarker:
    """Unpickling this object calls ``Path.write_text(marker, ...)``: code run by merely loading a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "code ran while loading")


def _malicious_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    good = memad.build("ae", **tiny())
    path, marker = tmp_path / "shared.pt", tmp_path / "MARKER"
    payload = {"format": FORMAT, "version": VERSION, "config": good.config, "model": good.state_dict(),
               "threshold": WritesMarker(marker)}
    torch.save(payload, path)
    return path, marker


def test_pickled_payload_is_live_when_loaded_unsafely(tmp_path):
    """The control: the file really does run code if loaded without ``weights_only``."""
    path, marker = _malicious_checkpoint(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran while loading"


def test_checkpoint_with_pickled_payload_is_refused(tmp_path):
    path, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="refused: the file holds objects other than tensors and plain data"):
        memad.load(path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not marker.exists()


def test_cli_eval_of_pickled_checkpoint_is_one_error_line(tmp_path, capsys):
    path, marker = _malicious_checkpoint(tmp_path)
    assert cli_main(["eval", str(path), "--data", "synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memad: error: ") and "refused" in err[0]
    assert not marker.exists()


def _zeroed(data: bytes, at: int) -> bytes:
    return data[:at] + bytes(16) + data[at + 16:]


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "bytes_zeroed_in_a_tensor", "plain_pickle"])
def test_corrupt_checkpoint(tmp_path, damage):
    path = memad.build("ae", **tiny()).save(tmp_path / "ae.pt")
    data = path.read_bytes()
    damaged = {"truncated": lambda: data[: len(data) // 3], "empty": lambda: b"",
               "garbage": lambda: os.urandom(4096),
               # torch.load itself would load this silently: only the archive's CRCs reveal it
               "bytes_zeroed_in_a_tensor": lambda: _zeroed(data, len(data) // 2),
               "plain_pickle": lambda: pickle.dumps({"format": FORMAT, "version": VERSION})}[damage]()
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=re.escape("not a readable checkpoint (truncated or corrupt?)")) as err:
        memad.load(path)
    assert str(path) in str(err.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        memad.load(tmp_path / "nope.pt")


def test_torch_file_that_is_not_a_memad_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a memad checkpoint"):
        memad.load(tmp_path / "other.pt")


def test_checkpoint_from_a_newer_memad(tmp_path):
    torch.save({"format": FORMAT, "version": VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match=f"checkpoint version {VERSION + 1} is newer than this memad"):
        memad.load(tmp_path / "new.pt")


def test_checkpoint_whose_weights_do_not_fit_its_config(tmp_path):
    det = memad.build("ae", **tiny())
    state = det.state_dict()
    state.pop(next(iter(state)))
    torch.save({"format": FORMAT, "version": VERSION, "config": det.config, "model": state}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="weights do not fit the config: missing"):
        memad.load(tmp_path / "odd.pt")


# -- YAML --------------------------------------------------------------------------------------
PYTHON_TAG = "!!python/object/apply:pathlib.Path.write_text [{marker!r}, 'code ran']"


def test_preset_yaml_with_python_tag_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    preset = tmp_path / "evil.yaml"
    preset.write_text(f"task: reconstruction\ndescription: {PYTHON_TAG.format(marker=str(marker))}\n")
    with pytest.raises(ConfigError, match="preset 'evil': cannot read") as err:
        Registry().add_preset("evil", preset)
    assert "python/object/apply" in str(err.value)
    assert not marker.exists()


def test_override_with_python_tag_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    with pytest.raises(ConfigError, match="--set data.image_size: cannot read value"):
        parse_assignment("data.image_size=" + PYTHON_TAG.format(marker=str(marker)))
    assert not marker.exists()


def test_preset_yaml_that_is_not_a_mapping(tmp_path):
    preset = tmp_path / "list.yaml"
    preset.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping, got list"):
        Registry().add_preset("list", preset)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value,
                                                                                             ast.Name):
            yield node.func.value.id, node.func.attr, node


def test_no_unsafe_loader_anywhere_in_the_code():
    """Every loader in memad and its built-in plugins is a safe one (checked in the source, so a new
    ``yaml.load`` or ``torch.load`` without ``weights_only=True`` fails here)."""
    problems = []
    files = sorted((REPO / "memad").rglob("*.py")) + sorted((REPO / "plugins").rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for module, func, call in _calls(ast.parse(path.read_text())):
            kwargs = {k.arg: k.value for k in call.keywords}
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            if module == "yaml" and "load" in func and func not in ("safe_load", "safe_load_all"):
                problems.append(f"{where}: yaml.{func}")
            if module in ("pickle", "dill", "cloudpickle") and func in ("load", "loads"):
                problems.append(f"{where}: {module}.{func}")
            if module == "torch" and func == "load":
                flag = kwargs.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            if module in ("np", "numpy") and func == "load":
                flag = kwargs.get("allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}: np.load with allow_pickle")
    assert not problems, problems


# -- plugins -----------------------------------------------------------------------------------
def _fake_distribution(site: Path) -> None:
    """A distribution on ``site`` with three memad plugins: one fine, one failing at import, one
    failing while registering."""
    (site / "memad_test_plugins-1.0.dist-info").mkdir(parents=True)
    (site / "memad_test_plugins-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: memad-test-plugins\nVersion: 1.0\n")
    (site / "memad_test_plugins-1.0.dist-info" / "entry_points.txt").write_text(textwrap.dedent("""\
        [memad]
        extra_good = extra_good_plugin
        broken_import = broken_import_plugin
        broken_register = broken_register_plugin
    """))
    (site / "extra_good_plugin.py").write_text(textwrap.dedent("""\
        from memad import hookimpl
        from memad_plugins.scorers.scorers import PSNRScorer

        class ExtraScorer(PSNRScorer):
            \"\"\"A scorer from a third-party package.\"\"\"

        @hookimpl
        def memad_register(registry):
            registry.add("scorer", "extra_psnr", ExtraScorer)
    """))
    (site / "broken_import_plugin.py").write_text("raise ImportError('this plugin needs libfoo')\n")
    (site / "broken_register_plugin.py").write_text(textwrap.dedent("""\
        from memad import hookimpl

        @hookimpl
        def memad_register(registry):
            raise RuntimeError('registration exploded')
    """))


PROBE = """
import json, os, warnings
warnings.simplefilter("ignore")
import memad
from memad.registry import reload_plugins
out = {}
for label, env in json.loads(os.environ["SCENARIOS"]).items():
    for var in ("MEMAD_PLUGINS", "MEMAD_DISABLE_PLUGINS"):
        os.environ.pop(var, None)
    os.environ.update(env)
    reg = reload_plugins()
    out[label] = {"plugins": sorted(n for n, _ in reg.plugins),
                  "failed": {f.name: f.error for f in reg.failures},
                  "scorers": reg.names("scorer"), "memories": reg.names("memory")}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def plugin_scenarios(tmp_path_factory):
    """The registry seen under each environment, from one subprocess (the test process's registry stays as is)."""
    site = tmp_path_factory.mktemp("site")
    _fake_distribution(site)
    scenarios = {
        "default": {},
        "disabled": {"MEMAD_DISABLE_PLUGINS": "broken_import, broken_register,extra_good"},
        "allowed": {"MEMAD_PLUGINS": "mnad,scorers,extra_good"},
        "allowed_none": {"MEMAD_PLUGINS": ""},
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCENARIOS": json.dumps(scenarios),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    for var in ("MEMAD_PLUGINS", "MEMAD_DISABLE_PLUGINS"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_failing_plugins_are_reported_and_the_others_load(plugin_scenarios):
    default = plugin_scenarios["default"]
    assert "ImportError: this plugin needs libfoo" in default["failed"]["broken_import"]
    assert "RuntimeError: registration exploded" in default["failed"]["broken_register"]
    assert "extra_good" in default["plugins"] and "extra_psnr" in default["scorers"]
    assert {"mnad", "scorers", "baselines"} <= set(default["plugins"])
    assert "broken_import" not in default["plugins"] and "broken_register" not in default["plugins"]


def test_disable_plugins_skips_them(plugin_scenarios):
    disabled = plugin_scenarios["disabled"]
    assert disabled["failed"] == {}
    assert "extra_good" not in disabled["plugins"] and "extra_psnr" not in disabled["scorers"]
    assert set(disabled["plugins"]) == set(plugin_scenarios["default"]["plugins"]) - {"extra_good"}


def test_allow_list_loads_only_those(plugin_scenarios):
    allowed = plugin_scenarios["allowed"]
    assert allowed["plugins"] == ["extra_good", "mnad", "scorers"]
    assert allowed["failed"] == {}
    assert "extra_psnr" in allowed["scorers"] and "none" not in allowed["memories"]  # "none" is in baselines
    assert plugin_scenarios["allowed_none"]["plugins"] == []
    assert plugin_scenarios["allowed_none"]["scorers"] == []
