"""Defect-inspection image folders (MVTec layout): loading, per-category metrics, the CLI end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memad.config import make_config
from memad.data import ImageSet, open_split
from memad.data.images import is_image_folder, load_image_folder, make_defect_folder
from memad.errors import DataError
from memad.metrics import best_f1, category_metrics, f1_at_threshold

from .conftest import tiny

CLI_SETTINGS = ["--set", "data.image_size=32", "--set", "encoder.widths=[8,16,32,64]", "--set", "train.progress=false",
                "--set", "train.device=cpu", "--set", "train.batch_size=4", "--set", "scorer.normalise=global"]


@pytest.fixture(scope="module")
def defects(tmp_path_factory) -> Path:
    return make_defect_folder(tmp_path_factory.mktemp("parts"), train=12, test_good=4, test_defect=3, size=32)


def _config(channels: int = 3, size: int = 32):
    return make_config("ae", {**tiny(), "data.channels": channels, "data.image_size": size})


def test_generated_folder_loads_with_labels_categories_and_masks(defects):
    train = open_split(defects, "training", _config())
    test = open_split(defects, "testing", _config())
    assert isinstance(train, ImageSet) and isinstance(test, ImageSet)
    assert train.independent_frames and not open_split("synthetic", "testing", _config()).independent_frames
    assert train.frames.shape == (12, 3, 32, 32) and train.lengths == [12] and set(train.categories) == {"good"}
    assert test.categories == ["good"] * 4 + ["scratch"] * 3 + ["spot"] * 3
    assert test.labels.tolist() == [0] * 4 + [1] * 6
    assert [Path(f).parent.name for f in test.frame_files] == test.categories
    # Good parts have empty masks; each drawn defect leaves a mark, and it sits where the mask says.
    per_image = test.masks.flatten(1).sum(1)
    assert (per_image[:4] == 0).all() and (per_image[4:] > 0).all()
    written = np.asarray(Image.open(defects / "ground_truth" / "spot" / "001_mask.png")) > 127
    assert np.array_equal(test.masks[8].numpy(), written)  # 32x32 masks at 32x32: no resizing


def test_any_size_grey_or_colour_is_resized_and_sorted_naturally(tmp_path):
    (tmp_path / "train" / "good").mkdir(parents=True)
    (tmp_path / "test" / "good").mkdir(parents=True)
    (tmp_path / "test" / "crack").mkdir(parents=True)
    Image.new("L", (50, 40), 10).save(tmp_path / "train" / "good" / "img10.png")
    Image.new("RGB", (20, 30), (200, 0, 0)).save(tmp_path / "train" / "good" / "img2.png")
    Image.new("L", (17, 17), 255).save(tmp_path / "test" / "good" / "a.png")
    Image.new("L", (17, 17), 0).save(tmp_path / "test" / "crack" / "b.png")
    train = load_image_folder(tmp_path, "training", (16, 24), channels=1)
    assert train.frames.shape == (2, 1, 16, 24)
    assert [Path(f).name for f in train.frame_files] == ["img2.png", "img10.png"]
    # PIL's own grey conversion of the red image, a constant picture stays constant when resized.
    red_grey = np.asarray(Image.new("RGB", (1, 1), (200, 0, 0)).convert("L"))[0, 0]
    assert (train.frames[0] == int(red_grey)).all() and (train.frames[1] == 10).all()
    test = load_image_folder(tmp_path, "testing", (8, 8), channels=3)
    assert test.frames.shape == (2, 3, 8, 8) and test.masks is None and test.labels.tolist() == [0, 1]


def test_missing_mask_and_bad_training_folder_are_named(tmp_path):
    root = make_defect_folder(tmp_path / "d", train=2, test_good=1, test_defect=1, size=16)
    (root / "ground_truth" / "spot" / "000_mask.png").unlink()
    with pytest.raises(DataError, match=re.escape("no mask for this defective image (expected ")) as err:
        load_image_folder(root, "testing", (16, 16), 1)
    assert str(root / "test" / "spot" / "000.png") in str(err.value)
    assert str(root / "ground_truth" / "spot" / "000_mask.png") in str(err.value)
    (root / "train" / "scratch").mkdir()
    with pytest.raises(DataError, match=re.escape("training images must all be good (in ")) as err:
        load_image_folder(root, "training", (16, 16), 1)
    assert "found the folder(s) scratch" in str(err.value)
    with pytest.raises(DataError, match="split"):
        load_image_folder(root, "validation", (16, 16), 1)
    empty = tmp_path / "e" / "train" / "good"
    empty.mkdir(parents=True)
    assert not is_image_folder(tmp_path / "e")  # no images: not taken for an image folder


def test_category_metrics_match_hand_computed_aurocs():
    scores = np.array([0.1, 0.4, 0.3, 0.9, 0.2, 0.35])
    labels = np.array([0, 0, 1, 1, 1, 1])
    cats = ["good", "good", "dent", "dent", "cut", "cut"]
    m = category_metrics(scores, labels, cats)
    # dent: pairs (good, dent): .3 vs .1 win, .3 vs .4 loss, .9 wins both -> 3/4; cut: .2>.1, .35>.1 -> 2/4.
    assert m["dent"]["auroc"] == pytest.approx(0.75) and m["cut"]["auroc"] == pytest.approx(0.5)
    assert m["good"] == {"images": 2, "normal": True}
    assert list(m) == ["good", "cut", "dent"]
    with pytest.raises(DataError, match="both normal and anomalous"):
        category_metrics(scores, np.array([0, 1, 1, 1, 1, 1]), cats)


def test_f1_at_threshold_and_best_f1_agree_with_brute_force():
    rng = np.random.default_rng(0)
    scores, labels = rng.random(40), rng.integers(0, 2, 40)
    manual = f1_at_threshold(scores, labels, 0.5)
    tp = int(((scores >= 0.5) & (labels == 1)).sum())
    p, r = tp / (scores >= 0.5).sum(), tp / labels.sum()
    assert manual["f1"] == pytest.approx(2 * p * r / (p + r))
    best = best_f1(scores, labels)
    brute = max(f1_at_threshold(scores, labels, t)["f1"] for t in scores)
    assert best["f1"] == pytest.approx(brute)
    assert f1_at_threshold(scores, labels, best["threshold"])["f1"] == pytest.approx(brute)


def test_cli_trains_and_evaluates_an_image_folder_end_to_end(defects, tmp_path, capsys):
    from memad.cli import main

    out = tmp_path / "run"
    rc = main(["train", "ae", "--data", str(defects), "--out", str(out), "--epochs", "1", "--eval", "--json",
               *CLI_SETTINGS])
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["frames"] == 10 and metrics["anomalous_frames"] == 6
    assert 0.0 <= metrics["pixel_auroc"] <= 1.0
    assert set(metrics["per_category"]) == {"good", "scratch", "spot"}
    assert metrics["per_category"]["scratch"]["images"] == 3

    rc = main(["eval", str(out / "checkpoint.pt"), "--data", str(defects), "--device", "cpu"])
    text = capsys.readouterr().out
    assert rc == 0 and "category spot" in text
    printed = dict(line.strip().split(": ", 1) for line in text.splitlines() if ": " in line)
    # The saved checkpoint scores the same folder as the model at the end of training did.
    assert float(printed["pixel_auroc"]) == pytest.approx(metrics["pixel_auroc"], abs=1e-4)


def test_scores_keep_each_image_file_in_order(defects):
    import memad

    det = memad.build("ae", **tiny(), **{"scorer.normalise": "none"})
    scores = det.score(defects)
    test = open_split(defects, "testing", det.config)
    assert scores.extra["files"] == test.frame_files
    assert list(scores.extra["categories"]) == test.categories
    # normalise=none: an image's score does not depend on the rest of the test set.
    alone = det.score(ImageSet(test.frames[5:6], ["one"], [1], test.labels[5:6], None, "one", test.frame_files[5:6],
                               test.categories[5:6]))
    assert alone.scores[0] == pytest.approx(scores.scores[5], rel=1e-5)


def test_maps_command_writes_a_png_grid_of_the_top_images(defects, tmp_path, capsys):
    import memad
    from memad.cli import main

    det = memad.build("ae", **tiny(), **{"scorer.normalise": "global"})
    ckpt = det.save(tmp_path / "ae.pt")
    out = tmp_path / "grid.png"
    assert main(["maps", str(ckpt), "--data", str(defects), "--top", "3", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 200
    # Three ranked lines, highest score first, each naming the image by category and file.
    assert len(lines) == 3 and [line.split()[0] for line in lines] == ["1.", "2.", "3."]
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert all(line.split()[2].split("/")[0] in {"good", "scratch", "spot"} for line in lines)
    assert main(["maps", str(ckpt), "--data", str(defects), "--out", str(tmp_path / "grid.jpg")]) == 2
    assert "grid.jpg: expected a file ending in .png, got .jpg" in capsys.readouterr().err


def test_maps_lowest_adds_the_most_normal_images_on_a_row_of_their_own(defects, tmp_path, capsys):
    import memad
    from memad.cli import main
    from memad.reports.plots import top_frames_grid

    det = memad.build("ae", **tiny(), **{"scorer.normalise": "none"})
    ckpt = det.save(tmp_path / "ae.pt")
    test = open_split(defects, "testing", det.config)
    every = np.sort(det.score(test).scores)[::-1]  # the 10 test scores, highest first
    out = tmp_path / "grid.png"
    assert main(["maps", str(ckpt), "--data", str(defects), "--top", "3", "--lowest", "2", "--columns", "3",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert [line.split()[0] for line in lines] == ["1.", "2.", "3.", "9.", "10."]
    np.testing.assert_allclose([float(line.split()[1]) for line in lines], every[[0, 1, 2, 8, 9]], atol=1e-4)
    # Two rows of three cells: the top three, then the two lowest and one empty cell.
    fig = top_frames_grid(det.score(test), test, k=3, columns=3, lowest=2)
    cells = [ax for ax in fig.axes if ax.get_title()]
    assert len(cells) == 5
    assert [float(ax.get_title().split("score ")[1].split()[0]) for ax in cells] == \
        pytest.approx(every[[0, 1, 2, 8, 9]], abs=1e-3)
    assert len({round(ax.get_position().y0, 3) for ax in cells}) == 2
    # Asking for more lowest images than remain shows each image once.
    fig = top_frames_grid(det.score(test), test, k=8, columns=4, lowest=5)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 10
    assert main(["maps", str(ckpt), "--data", str(defects), "--lowest", "-1", "--out", str(out)]) == 2
    assert "argument --lowest: expected an integer >= 0, got -1" in capsys.readouterr().err


def test_evaluate_images_reports_f1_at_the_given_threshold(defects):
    import memad
    from memad.reports.images import evaluate_images

    det = memad.build("ae", **tiny(), **{"scorer.normalise": "none"})
    report = evaluate_images(det, defects, threshold=0.0)
    labels = np.array([row["label"] for row in report["images"]])
    flagged = np.array([row["flagged"] for row in report["images"]])
    assert report["f1_at_threshold"] == f1_at_threshold([r["score"] for r in report["images"]], labels, 0.0)
    # PSNR scorer with normalise=none gives -PSNR < 0: a threshold of 0 flags nothing, so F1 is 0.
    assert not flagged.any() and report["f1_at_threshold"]["f1"] == 0.0
    assert 0.0 < report["best_f1"]["f1"] <= 1.0
    assert evaluate_images(det, defects)["f1_at_threshold"] is None  # no threshold fitted, none given
