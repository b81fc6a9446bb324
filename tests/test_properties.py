"""Property-based tests (hypothesis) of config parsing, override merging and label loading."""

from __future__ import annotations

import copy
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.io import savemat

from memad import ConfigError, DataError
from memad.config import apply_overrides, parse_assignment, preset_config, validate
from memad.data.labels import load_label_file

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- parse_assignment ---------------------------------------------------------------------------
names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8)
keys = st.lists(names, min_size=1, max_size=4).map(".".join)
scalars = (st.integers(-10**9, 10**9) | st.booleans() | st.none()
           | st.floats(allow_nan=False, width=64) | st.text(max_size=12))
values = scalars | st.lists(st.integers(-1000, 1000) | st.floats(allow_nan=False), max_size=4)


def yaml_text(value) -> str:
    """How a user would write ``value`` on the command line (YAML flow style, one line)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[: -len("\n...")].strip() if text.endswith("\n...") else text


@SETTINGS
@given(key=keys, value=values, pad=st.sampled_from(["", " ", "  "]))
def test_parse_assignment_reads_back_what_was_written(key, value, pad):
    assert parse_assignment(f"{pad}{key}{pad}={yaml_text(value)}") == (key, value)


@SETTINGS
@given(key=keys, text=st.text(string.ascii_letters + "=:/", min_size=1, max_size=10))
def test_parse_assignment_splits_at_the_first_equals_sign(key, text):
    quoted = yaml_text(text)
    assert parse_assignment(f"{key}={quoted}") == (key, text)


@SETTINGS
@given(text=st.text(string.ascii_letters + ". ", max_size=10))
def test_parse_assignment_without_key_or_equals_is_an_error(text):
    with pytest.raises(ConfigError, match="--set expects key=value"):
        parse_assignment(text)  # no "=" at all
    with pytest.raises(ConfigError, match="--set expects key=value"):
        parse_assignment(" =" + text)  # empty key


# -- apply_overrides ----------------------------------------------------------------------------
BASE = preset_config("mnad_pred")
#: Fields with the values that are valid for them (so that the merged config also validates).
FIELDS = {
    "data.image_size": st.integers(8, 512),
    "data.frames": st.integers(1, 8),
    "data.channels": st.sampled_from([1, 3]),
    "train.epochs": st.integers(0, 100),
    "train.batch_size": st.integers(1, 64),
    "train.lr": st.floats(1e-6, 1.0),
    "train.seed": st.integers(0, 2**31),
    "train.amp": st.booleans(),
    "test.chunk": st.integers(1, 256),
    "memory.gate": st.none() | st.floats(0, 1),
    "test.mode": st.sampled_from(["sequential", "batched"]),
    "memory.items": st.integers(1, 50),
    "memory.compactness": st.floats(0, 1),
    "scorer.weight": st.floats(0, 1),
}
overrides = st.dictionaries(st.sampled_from(sorted(FIELDS)), st.none(), min_size=1).flatmap(
    lambda chosen: st.fixed_dictionaries({k: FIELDS[k] for k in chosen}))


def read(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


@SETTINGS
@given(ov=overrides)
def test_overrides_read_back_and_validate(ov):
    before = copy.deepcopy(BASE)
    merged = apply_overrides(BASE, ov)
    assert BASE == before  # the preset itself is never changed
    checked = validate(merged)
    for key, value in ov.items():
        assert read(merged, key) == value
        assert read(checked, key) == value
    untouched = {"encoder", "decoder"} - {k.split(".")[0] for k in ov}
    for section in untouched:
        assert merged[section] == BASE[section]


@SETTINGS
@given(ov=overrides, data=st.data())
def test_overrides_on_distinct_fields_commute(ov, data):
    order = data.draw(st.permutations(list(ov)))
    assert apply_overrides(BASE, {k: ov[k] for k in order}) == apply_overrides(BASE, ov)
    one_by_one = BASE
    for k in order:
        one_by_one = apply_overrides(one_by_one, {k: ov[k]})
    assert one_by_one == apply_overrides(BASE, ov)


@SETTINGS
@given(ov=overrides)
def test_nested_mappings_equal_dotted_keys(ov):
    nested: dict = {}
    for key, value in ov.items():
        section, field = key.split(".")
        nested.setdefault(section, {})[field] = value
    assert apply_overrides(BASE, nested) == apply_overrides(BASE, ov)


@SETTINGS
@given(ov=overrides)
def test_applying_twice_changes_nothing_more(ov):
    once = apply_overrides(BASE, ov)
    assert apply_overrides(once, ov) == once


# A sequence of edits to the memory section: switch its component, or set one of its params.
memory_edits = st.lists(
    st.one_of(
        st.tuples(st.just("switch"), st.sampled_from(["mnad", "none"]), st.sampled_from(["bare", "dotted", "map"])),
        st.tuples(st.just("set"), st.sampled_from(["items", "compactness"]), st.integers(1, 9)),
    ),
    max_size=8,
)


@SETTINGS
@given(edits=memory_edits)
def test_switching_a_component_drops_the_old_params(edits):
    """Model: switching to another name starts the section afresh; the same name keeps its params."""
    config = copy.deepcopy(BASE)
    expected = copy.deepcopy(BASE["memory"])
    for edit in edits:
        if edit[0] == "switch":
            _, name, form = edit
            ov = {"bare": {"memory": name}, "dotted": {"memory.name": name},
                  "map": {"memory": {"name": name}}}[form]
            if name != expected["name"]:
                expected = {"name": name}
        else:
            _, param, value = edit
            ov = {f"memory.{param}": value}
            expected[param] = value
        config = apply_overrides(config, ov)
        assert config["memory"] == expected


# -- label files --------------------------------------------------------------------------------
lengths_st = st.lists(st.integers(1, 40), min_size=1, max_size=5)


@SETTINGS
@given(lengths=lengths_st, data=st.data(), shape=st.sampled_from(["flat", "row", "column"]))
def test_npy_labels_round_trip(lengths, data, shape):
    total = sum(lengths)
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=total, max_size=total)), dtype=np.int8)
    stored = {"flat": labels, "row": labels[None], "column": labels[:, None]}[shape]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.npy"
        np.save(path, stored.astype(np.float64 if data.draw(st.booleans()) else np.int64))
        np.testing.assert_array_equal(load_label_file(path, lengths), labels)


@SETTINGS
@given(lengths=lengths_st, extra=st.integers(-3, 3).filter(lambda d: d != 0))
def test_npy_labels_of_the_wrong_length_are_refused(lengths, extra):
    total = sum(lengths)
    if total + extra < 1:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.npy"
        np.save(path, np.zeros(total + extra))
        with pytest.raises(DataError, match=f"{total + extra} labels, but the test videos have {total} frames"):
            load_label_file(path, lengths)


@st.composite
def videos_with_intervals(draw):
    """Per video: its length and some 1-based inclusive [start, end] intervals (may overlap)."""
    lengths = draw(lengths_st)
    intervals = []
    for n in lengths:
        count = draw(st.integers(0, 3))
        ivs = []
        for _ in range(count):
            start = draw(st.integers(1, n))
            ivs.append((start, draw(st.integers(start, n))))
        intervals.append(ivs)
    return lengths, intervals


def _expected(lengths, intervals) -> np.ndarray:
    out = []
    for n, ivs in zip(lengths, intervals):
        frame = np.arange(1, n + 1)
        out.append(np.array([any(s <= f <= e for s, e in ivs) for f in frame], dtype=np.int8))
    return np.concatenate(out)


def _save_mat(path: Path, intervals) -> None:
    # UCSD's layout: a 1 x V cell array; each cell a 2 x K matrix, starts on the first row, ends on the second.
    gt = np.empty((1, len(intervals)), dtype=object)
    for v, ivs in enumerate(intervals):
        gt[0, v] = np.array(ivs, dtype=np.float64).T.reshape(2, len(ivs)) if ivs else np.zeros((0, 0))
    savemat(path, {"gt": gt})


@SETTINGS
@given(case=videos_with_intervals())
def test_mat_intervals_round_trip(case):
    lengths, intervals = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.mat"
        _save_mat(path, intervals)
        np.testing.assert_array_equal(load_label_file(path, lengths), _expected(lengths, intervals))


@SETTINGS
@given(case=videos_with_intervals(), past=st.integers(1, 5))
def test_mat_interval_past_the_video_end_is_refused(case, past):
    lengths, intervals = case
    intervals = [list(ivs) for ivs in intervals]
    n = lengths[-1]
    intervals[-1].append((1, n + past))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.mat"
        _save_mat(path, intervals)
        with pytest.raises(DataError, match=rf"video {len(lengths)}: interval \[1, {n + past}\] is outside frames "
                                            rf"1\.\.{n}"):
            load_label_file(path, lengths)
