"""The one-class ``digits`` dataset: the fixed split, labels, pixel values, and a tiny end-to-end run."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

import memad
from memad.config import make_config
from memad.data import ImageSet, open_split
from memad.data.images import DIGITS_TEST_FRACTION, digits_split_indices, make_digits
from memad.errors import DataError

from .conftest import tiny


def test_split_is_fixed_disjoint_and_stratified():
    train, test = digits_split_indices()
    again_train, _ = digits_split_indices()
    target = load_digits().target
    assert np.array_equal(train, again_train)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(target) == 1797
    for d in range(10):  # each digit keeps its share in the test split, within one image
        share = (target[test] == d).sum() / (target == d).sum()
        assert abs(share - DIGITS_TEST_FRACTION) < 1.0 / (target == d).sum() + 1e-9


def test_training_holds_only_the_normal_digit_and_test_labels_follow_it():
    target = load_digits().target
    train_idx, test_idx = digits_split_indices()
    train = make_digits("training", 7, (8, 8))
    test = make_digits("testing", 7, (8, 8))
    assert set(train.categories) == {"7"} and len(train) == int((target[train_idx] == 7).sum())
    assert len(test) == len(test_idx)
    assert np.array_equal(test.labels, (target[test_idx] != 7).astype(np.int8))
    assert [int(c) for c in test.categories] == target[test_idx].tolist()


def test_pixels_are_the_digit_values_scaled_to_bytes():
    images = load_digits().images
    _, test_idx = digits_split_indices()
    test = make_digits("testing", 0, (8, 8), channels=3)  # native size: no resampling
    expected = np.round(images[test_idx] * 255 / 16).astype(np.uint8)
    assert np.array_equal(test.frames[:, 0].numpy(), expected)
    assert np.array_equal(test.frames[:, 2].numpy(), expected)  # grey copied to the three channels
    big = make_digits("testing", 0, (32, 32))
    assert big.frames.shape == (len(test_idx), 1, 32, 32)


@pytest.mark.parametrize("spec", ["digits", "digits:12", "digits:x"])
def test_bad_digit_argument_is_named(spec):
    cfg = make_config("ae", {**tiny(), "data.channels": 1})
    given = repr(spec.partition(":")[2]) if ":" in spec else "None"
    with pytest.raises(DataError, match=re.escape("dataset 'digits' needs the normal digit 0-9 as its argument "
                                                  "(e.g. digits:3), got ")) as err:
        open_split(spec, "training", cfg)
    assert str(err.value).endswith(f"got {given}")


def test_tiny_run_reports_auroc_against_each_other_digit():
    det = memad.build("ae", **tiny(), **{"data.channels": 1, "data.image_size": 16, "scorer.normalise": "global",
                                         "train.batch_size": 16})
    det.fit("digits:1")
    assert isinstance(open_split("digits:1", "testing", det.config), ImageSet)
    metrics = det.evaluate("digits:1")
    per = metrics["per_category"]
    assert per["1"]["normal"] and per["1"]["images"] == 73
    others = [c for c in per if c != "1"]
    assert len(others) == 9 and all(0.0 <= per[c]["auroc"] <= 1.0 for c in others)
    assert 0.0 <= metrics["frame_auroc"] <= 1.0 and metrics["pixel_auroc"] is None


def test_images_are_calibrated_one_by_one_whatever_the_temporal_defaults():
    # an image set is one "video" of independent images: averaging neighbours or taking a running floor
    # would mix unrelated images (grouped by category), and so would waiting for the next ones: none recorded
    det = memad.build("ae", **tiny(), **{"data.channels": 1, "data.image_size": 16, "train.batch_size": 16})
    assert det.config["test"]["smooth"] > 1 and det.config["test"]["relative"] > 0 and det.config["test"]["confirm"] > 0
    det.fit("digits:1")
    det.calibrate("digits:1")
    cal = det.calibration_
    assert (cal["smooth"], cal["relative"], cal["confirm"], cal["threshold_over"]) == (0, 0, 0, "frames")
    scores = det.score("digits:1")
    expected = det.scorer(scores.stats.with_calibration(cal["signals"]))
    np.testing.assert_allclose(scores.calibrated, expected)

