"""Bad input is refused before any training, with an error that names the file, field or value
and says what was expected; from the CLI as one ``memad: error: ...`` line and exit status 2.

The dataset folders are built in ``tmp_path`` from tiny generated PNGs.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import memad
from memad import ConfigError, DataError
from memad.cli import main as cli_main
from memad.config import parse_assignment
from memad.data import VideoSet, open_split

from .conftest import tiny

SIZE = 16  # side of the generated frames on disk


def write_video(root: Path, split: str, video: str, count: int, *, size=(SIZE, SIZE), mode: str = "RGB",
                names: list[str] | None = None, start: int = 0) -> Path:
    """``count`` small frames in ``root/split/frames/video``; frame i has a distinct colour."""
    folder = root / split / "frames" / video
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = names[i] if names else f"{start + i:03d}.png"
        colour = (40 + 7 * i) % 256 if mode == "L" else ((40 + 7 * i) % 256, 90, 200)
        Image.new(mode, size, colour).save(folder / name)
    return folder


def write_dataset(root: Path, train: int = 6, test: int = 6, **kw) -> Path:
    write_video(root, "training", "01", train, **kw)
    write_video(root, "testing", "01", test, **kw)
    return root


@pytest.fixture(scope="module")
def config():
    return memad.build("ae", **tiny()).config


# -- dataset folders ---------------------------------------------------------------------
def test_missing_dataset_folder(tmp_path, config):
    with pytest.raises(DataError, match="no such folder, and not a registered dataset") as err:
        open_split(tmp_path / "nope", "training", config)
    assert str(tmp_path / "nope") in str(err.value)


def test_empty_dataset_folder(tmp_path, config):
    with pytest.raises(DataError, match=re.escape("folder not found (expected ROOT/{training,testing}/frames")) as err:
        open_split(tmp_path, "training", config)
    assert str(tmp_path / "training" / "frames") in str(err.value)


def test_no_video_folders(tmp_path, config):
    (tmp_path / "training" / "frames").mkdir(parents=True)
    with pytest.raises(DataError, match="no video folders inside") as err:
        open_split(tmp_path, "training", config)
    assert f"expected {tmp_path / 'training' / 'frames'}/<video>/<frame>.jpg" in str(err.value)


def test_empty_video_folder(tmp_path, config):
    (tmp_path / "training" / "frames" / "01").mkdir(parents=True)
    with pytest.raises(DataError, match="no frame files") as err:
        open_split(tmp_path, "training", config)
    assert str(tmp_path / "training" / "frames" / "01") in str(err.value)


def test_mixed_frame_sizes(tmp_path, config):
    write_video(tmp_path, "training", "01", 3)
    write_video(tmp_path, "training", "02", 3, size=(20, SIZE))
    with pytest.raises(DataError, match="frames of mixed sizes") as err:
        open_split(tmp_path, "training", config)
    msg = str(err.value)
    assert "16x16" in msg and "20x16" in msg and "02" in msg


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_image(tmp_path, config, damage):
    folder = write_video(tmp_path, "training", "01", 4)
    bad = folder / "002.png"
    data = bad.read_bytes()
    bad.write_bytes({"garbage": b"not a png at all", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(DataError, match="cannot read image") as err:
        open_split(tmp_path, "training", config)
    assert str(bad) in str(err.value)


def test_frame_names_not_numbers(tmp_path, config):
    write_video(tmp_path, "training", "01", 3, names=["001.png", "frame_b.png", "frame_c.png"])
    with pytest.raises(DataError, match="frame names must be numbers") as err:
        open_split(tmp_path, "training", config)
    assert "'frame_b.png' and 1 more" in str(err.value)


def test_two_frames_with_one_number(tmp_path, config):
    write_video(tmp_path, "training", "01", 2, names=["1.png", "001.png"])
    with pytest.raises(DataError, match=re.escape("two frame files are numbered 1 (001.png and 1.png)")) as err:
        open_split(tmp_path, "training", config)
    assert str(tmp_path / "training" / "frames" / "01") in str(err.value)


def test_frame_numbers_sort_numerically(tmp_path, config):
    # 2 < 10 although "10" < "2" as text: the frames must come in numeric order.
    write_video(tmp_path, "training", "01", 3, names=["10.png", "2.png", "1.png"], mode="L")
    videos = open_split(tmp_path, "training", config)
    assert [Path(f).name for f in videos.frame_files] == ["1.png", "2.png", "10.png"]


# -- labels and masks --------------------------------------------------------------------
def test_label_length_mismatch_gives_both_numbers(tmp_path, config):
    write_dataset(tmp_path, test=5)
    np.save(tmp_path / "gt.npy", np.zeros(7, dtype=np.int8))
    with pytest.raises(DataError, match=re.escape("7 labels, but the test videos have 5 frames")) as err:
        open_split(tmp_path, "testing", config)
    assert str(tmp_path / "gt.npy") in str(err.value)


def test_labels_not_zero_or_one(tmp_path, config):
    write_dataset(tmp_path, test=5)
    np.save(tmp_path / "gt.npy", np.array([0, 0, 2, 1, 0]))
    with pytest.raises(DataError, match="labels must be 0 or 1, found 2 at index 2"):
        open_split(tmp_path, "testing", config)


def test_several_label_files(tmp_path, config):
    write_dataset(tmp_path, test=5)
    np.save(tmp_path / "a.npy", np.zeros(5))
    np.save(tmp_path / "b.npy", np.zeros(5))
    with pytest.raises(DataError, match=re.escape("several label files (a.npy, b.npy); pass one with --labels")):
        open_split(tmp_path, "testing", config)


def test_label_file_missing_or_of_wrong_kind(tmp_path, config):
    write_dataset(tmp_path, test=5)
    with pytest.raises(DataError, match="does not exist"):
        open_split(tmp_path, "testing", config, labels=tmp_path / "gt.npy")
    (tmp_path / "gt.txt").write_text("0 0 0 0 0")
    with pytest.raises(DataError, match="expected a .npy or .mat file"):
        open_split(tmp_path, "testing", config, labels=tmp_path / "gt.txt")


def test_masks_missing_for_some_frames(tmp_path, config):
    write_dataset(tmp_path, test=5)
    masks = tmp_path / "testing" / "masks" / "01"
    masks.mkdir(parents=True)
    for i in range(3):
        Image.new("L", (SIZE, SIZE), 0).save(masks / f"{i:03d}.png")
    with pytest.raises(DataError, match=re.escape("no mask for 2 of 5 frames (first: 003.png)")) as err:
        open_split(tmp_path, "testing", config)
    assert str(masks) in str(err.value)


def test_masks_folder_missing_for_a_video(tmp_path, config):
    write_dataset(tmp_path, test=3)
    write_video(tmp_path, "testing", "02", 3)
    masks = tmp_path / "testing" / "masks" / "01"
    masks.mkdir(parents=True)
    for i in range(3):
        Image.new("L", (SIZE, SIZE), 0).save(masks / f"{i:03d}.png")
    with pytest.raises(DataError, match="masks folder missing for test video '02'"):
        open_split(tmp_path, "testing", config)


# -- channels and sizes --------------------------------------------------------------------
def test_grayscale_folder_with_three_channels_is_converted(tmp_path):
    """Documented: a folder is converted by PIL on load, so gray frames become three equal channels."""
    write_video(tmp_path, "training", "01", 3, mode="L")
    cfg = memad.build("ae", **tiny(data={"image_size": SIZE, "channels": 3})).config
    videos = open_split(tmp_path, "training", cfg)
    assert videos.frames.shape == (3, 3, SIZE, SIZE)
    expected = torch.tensor([40, 47, 54], dtype=torch.uint8)  # the grays written, frame by frame
    assert torch.equal(videos.frames[:, 0, 0, 0], expected)
    assert torch.equal(videos.frames[:, 0], videos.frames[:, 1]) and torch.equal(videos.frames[:, 1],
                                                                                  videos.frames[:, 2])


def test_colour_folder_with_one_channel_is_converted(tmp_path):
    write_video(tmp_path, "training", "01", 2)  # RGB (40 + 7i, 90, 200)
    cfg = memad.build("ae", **tiny(data={"image_size": SIZE, "channels": 1})).config
    videos = open_split(tmp_path, "training", cfg)
    assert videos.frames.shape == (2, 1, SIZE, SIZE)
    # ITU-R 601-2 luma, the formula PIL documents for mode "L"
    for i in range(2):
        r, g, b = 40 + 7 * i, 90, 200
        assert int(videos.frames[i, 0, 3, 3]) == pytest.approx(r * 0.299 + g * 0.587 + b * 0.114, abs=1)


def _video_set(channels: int, size: int, frames: int = 12) -> VideoSet:
    return VideoSet(torch.zeros(frames, channels, size, size, dtype=torch.uint8), ["v"], [frames],
                    labels=np.r_[np.zeros(frames // 2), np.ones(frames - frames // 2)].astype(np.int8),
                    source="my frames")


@pytest.mark.parametrize("action", ["fit", "score"])
def test_videoset_with_wrong_channels_is_refused(action):
    det = memad.build("ae", **tiny())  # data.channels=3
    with pytest.raises(DataError, match=re.escape("frames have 1 channels, the config expects data.channels=3")):
        getattr(det, action)(_video_set(channels=1, size=32))


def test_colour_frames_for_a_grey_model_are_converted_as_image_files_are_and_other_channels_refused():
    det = memad.build("ae", **tiny(data={"image_size": 32, "channels": 1}))
    rgb = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    grey = np.stack([np.asarray(Image.fromarray(f.permute(1, 2, 0).numpy(), "RGB").convert("L")) for f in rgb])
    np.testing.assert_array_equal(det.score_video(rgb), det.score_video(torch.from_numpy(grey)[:, None]))
    with pytest.raises(DataError, match=re.escape("video frame 0: expected a (C, H, W) tensor with C of 1, 3 or 4, "
                                                  "got shape (2, 32, 32)")):
        det.score_video(torch.zeros(6, 2, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("action", ["fit", "score"])
def test_videoset_with_wrong_size_is_refused(action):
    det = memad.build("ae", **tiny())  # 32x32
    with pytest.raises(DataError, match=re.escape("frames are 16x16 (height x width), the config expects "
                                                  "data.image_size=[32, 32]")):
        getattr(det, action)(_video_set(channels=3, size=16))


# -- configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, overrides, fragment", [
    ("mnad_prd", {}, "unknown preset 'mnad_prd'; did you mean 'mnad_pred'? valid: ae, "),
    ("mnad_pred", {"memory": "mnda"}, "unknown memory 'mnda'; did you mean 'mnad'? valid: "),
    ("mnad_pred", {"scorer.name": "psrn"}, "unknown scorer 'psrn'; did you mean 'psnr'?"),
    ("mnad_pred", {"data.chanels": 1},
     "unknown field in 'data': 'chanels'; did you mean 'channels'? valid: cache_dir, channels, frames, image_size, "
     "in_memory, input, memory_budget_gb, normalise, pixel_eval_size, workers"),
    ("mnad_pred", {"trian": {"epochs": 1}}, "unknown config section 'trian'; did you mean 'train'?"),
    ("mnad_pred", {"memory.itmes": 5}, "parameter of memory 'mnad' (memory.itmes): 'itmes'; did you mean 'items'?"),
])
def test_unknown_names_list_the_valid_ones(preset, overrides, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        memad.build(preset, **overrides)


@pytest.mark.parametrize("overrides, fragment", [
    ({"data.frames": "four"}, "data.frames: expected int, got 'four' (str)"),
    ({"train.epochs": 1.5}, "train.epochs: expected int, got 1.5 (float)"),
    ({"train.amp": "yes"}, "train.amp: expected bool or 'auto', got 'yes' (str)"),
    ({"test.gate": 0.01}, "test.gate has moved to memory.gate"),
    ({"train.lr": -1}, "train.lr: expected a value > 0, got -1"),
    ({"train.lr": 0}, "train.lr: expected a value > 0, got 0"),
    ({"data.image_size": 4}, "data.image_size: expected a value >= 8, got 4"),
    ({"data.image_size": [64, 2]}, "data.image_size: expected a value >= 8, got 2"),
    ({"data.channels": 2}, "data.channels: expected one of [1, 3], got 2"),
    ({"test.mode": "batch"}, "test.mode: expected 'sequential' or 'batched', got 'batch'"),
    ({"memory.items": "ten"}, "memory.items: expected int, got 'ten' (str)"),
])
def test_wrong_type_or_range_names_field_value_and_expectation(overrides, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        memad.build("mnad_pred", **overrides)


def test_set_without_value():
    with pytest.raises(ConfigError, match=re.escape("--set expects key=value, got 'data.image_size'")):
        parse_assignment("data.image_size")


# -- the CLI ---------------------------------------------------------------------------------
def _one_error_line(capsys) -> str:
    """The error is one line, the last one written (a progress banner may come before it)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("memad: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


def test_cli_set_without_value(capsys):
    assert cli_main(["train", "ae", "--data", "synthetic", "--set", "data.image_size"]) == 2
    assert "--set expects key=value, got 'data.image_size'" in _one_error_line(capsys)


def test_cli_bad_folder_is_one_line_and_status_2(tmp_path, capsys):
    write_video(tmp_path, "training", "01", 3, names=["001.png", "x.png", "y.png"])
    out = tmp_path / "run"
    status = cli_main(["train", "ae", "--data", str(tmp_path), "--out", str(out), "--set", "data.image_size=16",
                       "--set", "train.progress=false"])
    assert status == 2
    assert "frame names must be numbers" in _one_error_line(capsys)
    assert not (out / "checkpoint.pt").exists()


def test_cli_eval_label_error_comes_before_training(tmp_path, capsys):
    """``train --eval`` checks the test split first: a bad label file fails before any epoch."""
    write_dataset(tmp_path, train=6, test=5)
    np.save(tmp_path / "gt.npy", np.zeros(9, dtype=np.int8))
    out = tmp_path / "run"
    status = cli_main(["train", "ae", "--data", str(tmp_path), "--out", str(out), "--eval", "--epochs", "1",
                       "--set", "data.image_size=16", "--set", "encoder.widths=[8,16,32,64]",
                       "--set", "train.progress=false", "--set", "train.device=cpu"])
    assert status == 2
    assert "9 labels, but the test videos have 5 frames" in _one_error_line(capsys)
    assert not (out / "checkpoint.pt").exists()


def test_cli_subprocess_unknown_preset(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "memad", "train", "mnad_prd", "--data", "synthetic",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [ln for ln in lines if ln.startswith("memad: error: ")] and len(lines) == 1, proc.stderr
    assert "unknown preset 'mnad_prd'; did you mean 'mnad_pred'?" in lines[0]
    assert not (tmp_path / "run").exists()


# -- docs/reliability.md stays true ---------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def _doc_rows() -> list[dict[str, str]]:
    """Rows of the 5-column tables (what, happens, error, fragment, test) in docs/reliability.md."""
    rows = []
    for line in (REPO / "docs" / "reliability.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 5 or cells[0] == "What was tried" or set(cells[0]) <= {"-", "|"}:
            continue
        rows.append(dict(zip(("what", "happens", "error", "fragment", "test"), (c.strip("`") for c in cells))))
    return rows


def _literal_texts(node: ast.AST, params: list[str], escaped: bool = False) -> list[str]:
    """The text a ``match=`` argument (or an asserted string) certainly contains."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        # A bare regex: drop its escapes so that ``\[1`` reads as ``[1``.
        return [node.value if escaped else re.sub(r"\\(.)", r"\1", node.value)]
    if isinstance(node, ast.JoinedStr):
        return [t for v in node.values for t in _literal_texts(v, params, escaped)]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "escape" and node.args:
        return _literal_texts(node.args[0], params, escaped=True)
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "replace":
        return _literal_texts(node.func.value, params, escaped)
    if isinstance(node, ast.Name):  # a parametrized fragment: every string in the parametrize lists
        return params
    return []


def _asserted(func: ast.FunctionDef) -> tuple[dict[str, list[str]], list[str], bool]:
    """What a test asserts: ``{exception: [match texts]}``, strings asserted ``in`` output, and
    whether it checks an exit status of 2."""
    params = [n.value for d in func.decorator_list for n in ast.walk(d)
              if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    raises: dict[str, list[str]] = {}
    contained: list[str] = []
    status_2 = False
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "raises" and node.args:
            exc = getattr(node.args[0], "id", None) or getattr(node.args[0], "attr", "")
            for kw in node.keywords:
                if kw.arg == "match":
                    raises.setdefault(exc, []).extend(_literal_texts(kw.value, params))
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            if isinstance(node.ops[0], ast.In):
                contained.extend(_literal_texts(node.left, params, escaped=True))
            if isinstance(node.ops[0], ast.Eq) and any(isinstance(c, ast.Constant) and c.value == 2
                                                       for c in node.comparators):
                status_2 = True
    return raises, contained, status_2


def test_reliability_doc_is_kept_true():
    rows = _doc_rows()
    assert len(rows) > 60
    trees: dict[str, dict[str, ast.FunctionDef]] = {}
    problems = []
    for row in rows:
        file, _, name = row["test"].partition("::")
        if file not in trees:
            path = REPO / file
            tree = ast.parse(path.read_text()) if path.is_file() else ast.Module(body=[], type_ignores=[])
            trees[file] = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        func = trees[file].get(name)
        if func is None:
            problems.append(f"{row['test']}: no such test")
            continue
        if row["error"] == "—":
            continue
        raises, contained, status_2 = _asserted(func)
        if row["error"] == "exit 2":
            ok = status_2 and any(row["fragment"] in text for text in contained)
        else:
            ok = any(row["fragment"] in text for text in raises.get(row["error"], []))
        if not ok:
            problems.append(f"{row['test']}: does not assert {row['error']} with {row['fragment']!r}")
    assert not problems, "docs/reliability.md has drifted:\n" + "\n".join(problems)
