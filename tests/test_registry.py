"""In-code registrations and reloading the plugins."""

from __future__ import annotations

import numpy as np
import pytest

import memad


def test_in_code_registration_survives_a_plugin_reload():
    @memad.register("scorer", "test_registry_kept")
    class Kept(memad.Scorer):
        def __call__(self, stats):
            return np.zeros(len(stats))

    reg = memad.reload_plugins()
    entry = reg.get("scorer", "test_registry_kept")
    assert entry.obj is Kept and entry.source.startswith("code")
    assert "mnad" in reg.names("scorer")  # the plugins were loaded again as well
    det = memad.build("ae", scorer={"name": "test_registry_kept"})
    assert isinstance(det.scorer, Kept)


def test_a_refused_registration_is_not_replayed():
    with pytest.raises(memad.ConfigError, match="unknown component kind 'scorers'"):
        memad.register("scorers", "test_registry_bad")(lambda: None)
    memad.reload_plugins()  # would raise here if the refused entry had been remembered
    with pytest.raises(memad.ConfigError, match="test_registry_bad"):
        memad.get_registry().get("scorer", "test_registry_bad")


def test_add_presets_registers_each_yaml_under_its_file_name(tmp_path):
    (tmp_path / "b_small.yaml").write_text("description: b\ntask: prediction\n")
    (tmp_path / "a_small.yaml").write_text("description: a\ntask: reconstruction\n")
    (tmp_path / "notes.txt").write_text("not a preset")
    reg = memad.registry.Registry()
    reg.add_presets(tmp_path, source="test")
    assert reg.names("preset") == ["a_small", "b_small"]
    assert reg.get("preset", "a_small").obj == {"description": "a", "task": "reconstruction"}
    assert reg.get("preset", "b_small").source == "test"
