"""docs/config.md is generated from the code (docs/gen_config.py) and must match it exactly."""

import dataclasses
from pathlib import Path

import pytest

from memad import config as cfgmod
from memad.registry import get_registry

from .conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generator():
    return load_script("docs/gen_config.py", "gen_config")


def test_config_reference_is_in_sync_with_the_code(generator):
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == generator.render(), "docs/config.md is stale: run python docs/gen_config.py"


def test_every_section_field_and_builtin_component_parameter_is_documented(generator):
    text = (ROOT / "docs" / "config.md").read_text()
    for section, schema in cfgmod.SECTIONS.items():
        for f in dataclasses.fields(schema):
            assert f"| `{section}.{f.name}` |" in text, f"{section}.{f.name} missing"
    builtin = [e for e in get_registry() if e.source.startswith(("memad 0", "memad (")) and e.kind not in ("preset", "command", "logger")]
    assert {e.kind for e in builtin} >= {"encoder", "memory", "update_rule", "decoder", "scorer", "dataset"}
    for e in builtin:
        if e.kind == "dataset":
            assert f"| `{e.name}` |" in text
            continue
        block = text.split(f"#### `{e.kind}: {e.name}`", 1)
        assert len(block) == 2, f"{e.kind} {e.name} missing"
        body = block[1].split("####", 1)[0]
        for pname in cfgmod.component_params(e.obj):
            assert f"| `{pname}` |" in body, f"{e.kind} {e.name}: parameter {pname} missing"


def test_documented_field_names_all_exist(generator):
    # Nothing stale: every dotted field named in the sections tables is a field of the code.
    import re

    text = (ROOT / "docs" / "config.md").read_text()
    named = set(re.findall(r"^\| `(data|train|test)\.(\w+)` \|", text, flags=re.M))
    real = {(s, f.name) for s, schema in cfgmod.SECTIONS.items() for f in dataclasses.fields(schema)}
    assert named == real
