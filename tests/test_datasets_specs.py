"""``avenue:PATH``, ``shanghaitech:PATH`` and ``ucsd:PATH`` on miniature copies of the layouts as
downloaded, written in the real formats (AVI through PyAV, MAT v5 through scipy, TIFF and BMP
through Pillow); folders lacking parts are errors that list what was looked for."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from memad import DataError
from memad.data import open_split
from memad.data.video_files import write_video

CFG = {"data": {"image_size": 16, "channels": 1, "pixel_eval_size": 16}, "train": {"progress": False}}
H, W = 24, 32


def frames(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 200, (n, H, W, 3), dtype=np.uint8)


def mask_stack(n: int, anomalous: list[int]) -> np.ndarray:
    m = np.zeros((n, H, W), np.uint8)
    for t in anomalous:
        m[t, 5:9, 10:14] = 1
    return m


# -- CUHK Avenue -----------------------------------------------------------------------------------
def write_avenue(root: Path, test_lengths=(8, 10)) -> Path:
    for i, n in enumerate((9, 7), start=1):
        write_video(root / "training_videos" / f"{i:02d}.avi", frames(n, i))
    gt = root / "ground_truth_demo" / "testing_label_mask"
    gt.mkdir(parents=True)
    for i, n in enumerate(test_lengths, start=1):
        write_video(root / "testing_videos" / f"{i:02d}.avi", frames(n, 10 + i))
        cells = np.empty((1, n), dtype=object)  # volLabel: a 1 x T cell of H x W masks, as the real files
        for t, m in enumerate(mask_stack(n, [2, 3] if i == 1 else [n - 1])):
            cells[0, t] = m.astype(float)
        savemat(gt / f"{i}_label.mat", {"volLabel": cells})
    return root


def test_avenue(tmp_path):
    root = write_avenue(tmp_path / "avenue")
    train = open_split(f"avenue:{root}", "training", CFG)
    assert train.names == ["01", "02"] and train.lengths == [9, 7] and train.fps == [25.0, 25.0]
    test = open_split(f"avenue:{root}", "testing", CFG)
    assert test.lengths == [8, 10]
    assert np.flatnonzero(test.labels).tolist() == [2, 3, 8 + 9]
    assert test.masks.shape == (18, 16, 16) and test.masks[2].any() and not test.masks[0].any()


def test_avenue_unpacked_with_its_top_folder(tmp_path):
    write_avenue(tmp_path / "download" / "Avenue Dataset")
    assert open_split(f"avenue:{tmp_path / 'download'}", "training", CFG).lengths == [9, 7]


def test_avenue_label_count_differs_from_decoded_frames(tmp_path):
    root = write_avenue(tmp_path / "avenue")
    cells = np.empty((1, 9), dtype=object)
    for t in range(9):
        cells[0, t] = np.zeros((H, W))
    savemat(root / "ground_truth_demo" / "testing_label_mask" / "2_label.mat", {"volLabel": cells})
    with pytest.raises(DataError, match=re.escape("9 masks for the 10 frames of video '02'")) as err:
        open_split(f"avenue:{root}", "testing", CFG)
    assert "2_label.mat" in str(err.value)


def test_avenue_missing_parts_lists_what_was_looked_for(tmp_path):
    root = write_avenue(tmp_path / "avenue")
    import shutil

    shutil.rmtree(root / "ground_truth_demo")
    with pytest.raises(DataError, match="ground_truth_demo/testing_label_mask/ not found; looked for") as err:
        open_split(f"avenue:{root}", "testing", CFG)
    msg = str(err.value)
    assert f"{root / 'training_videos'} (found)" in msg and "testing_label_mask (missing)" in msg
    (root / "testing_videos").rename(root / "test_videos")
    with pytest.raises(DataError, match="testing_videos/ not found"):
        open_split(f"avenue:{root}", "testing", CFG)
    with pytest.raises(DataError, match=re.escape("avenue:PATH")):
        open_split("avenue", "testing", CFG)
    with pytest.raises(DataError, match="no such folder"):
        open_split(f"avenue:{tmp_path / 'nowhere'}", "testing", CFG)


# -- ShanghaiTech ----------------------------------------------------------------------------------
def write_shanghaitech(root: Path) -> Path:
    for name, n in (("01_001", 8), ("01_002", 6)):
        write_video(root / "training" / "videos" / f"{name}.avi", frames(n, n))
    for name, n, bad in (("01_0014", 7, [4, 5]), ("01_0015", 6, [])):
        folder = root / "testing" / "frames" / name
        folder.mkdir(parents=True)
        for t, f in enumerate(frames(n, 20 + n)):
            Image.fromarray(f).save(folder / f"{t:03d}.jpg")
        for part, arr in (("test_frame_mask", np.isin(np.arange(n), bad).astype(np.int64)),
                          ("test_pixel_mask", mask_stack(n, bad))):
            (root / "testing" / part).mkdir(parents=True, exist_ok=True)
            np.save(root / "testing" / part / f"{name}.npy", arr)
    return root


def test_shanghaitech(tmp_path):
    root = write_shanghaitech(tmp_path / "sh")
    train = open_split(f"shanghaitech:{root}", "training", CFG)
    assert train.names == ["01_001", "01_002"] and train.lengths == [8, 6]
    test = open_split(f"shanghaitech:{root}", "testing", CFG)
    assert test.names == ["01_0014", "01_0015"] and test.lengths == [7, 6]
    assert np.flatnonzero(test.labels).tolist() == [4, 5] and test.masks.shape == (13, 16, 16)
    assert np.array_equal(test.masks.flatten(1).any(1).numpy(), test.labels.astype(bool))


def test_shanghaitech_label_length_differs(tmp_path):
    root = write_shanghaitech(tmp_path / "sh")
    bad = root / "testing" / "test_frame_mask" / "01_0015.npy"
    np.save(bad, np.zeros(9, np.int64))
    with pytest.raises(DataError, match=re.escape("9 frame labels, but video '01_0015'")) as err:
        open_split(f"shanghaitech:{root}", "testing", CFG)
    assert str(bad) in str(err.value) and "has 6 decoded frames" in str(err.value)


def test_shanghaitech_missing_parts(tmp_path):
    root = write_shanghaitech(tmp_path / "sh")
    (root / "testing" / "test_frame_mask" / "01_0015.npy").unlink()
    with pytest.raises(DataError, match="no frame label file for 1 of 2 test videos; looked for") as err:
        open_split(f"shanghaitech:{root}", "testing", CFG)
    assert "01_0015.npy" in str(err.value)
    import shutil

    shutil.rmtree(root / "training")
    with pytest.raises(DataError, match="training/videos/ not found; looked for") as err:
        open_split(f"shanghaitech:{root}", "training", CFG)
    assert "testing/frames (found)" in str(err.value)


# -- UCSD Ped1 / Ped2 ------------------------------------------------------------------------------
def write_ucsd(root: Path, name: str, gt_for: tuple[int, ...], m_file: str | None) -> Path:
    base = root / name
    for kind, count in (("Train", 2), ("Test", 3)):
        for v in range(1, count + 1):
            folder = base / kind / f"{kind}{v:03d}"
            folder.mkdir(parents=True)
            for t, f in enumerate(frames(6 + v, 30 + v), start=1):  # 1-based, as the real .tif names
                Image.fromarray(f[..., 0]).save(folder / f"{t:03d}.tif")
            (folder / "._001.tif").write_bytes(b"\x00\x05\x16\x07 mac metadata")  # as in the real archive
            if kind == "Test" and v in gt_for:
                gt = base / kind / f"{kind}{v:03d}_gt"
                gt.mkdir()
                for t, m in enumerate(mask_stack(6 + v, [0, 1]), start=1):
                    Image.fromarray(m * 255).save(gt / f"{t:03d}.bmp")
    if m_file is not None:
        (base / "Test" / f"{name}.m").write_text(m_file)
    return base


PED1_M = """TestVideoFile = {};
% Test001
TestVideoFile{end+1}.gt_frame = [1:2];
TestVideoFile{end+1}.gt_frame = [2:3, 6:8];
TestVideoFile{end+1}.gt_frame = [9];
"""


def test_ucsd_ped1_labels_from_masks_and_m_file(tmp_path):
    base = write_ucsd(tmp_path, "UCSDped1", gt_for=(1,), m_file=PED1_M)
    train = open_split(f"ucsd:{base}", "training", CFG)
    assert train.names == ["Train001", "Train002"] and train.lengths == [7, 8]
    test = open_split(f"ucsd:{base}", "testing", CFG)
    assert test.lengths == [7, 8, 9]
    # Test001 from its masks (frames 0, 1), Test002 and Test003 from the .m file (1-based, inclusive)
    labels = np.split(test.labels, np.cumsum(test.lengths)[:-1])
    assert np.flatnonzero(labels[0]).tolist() == [0, 1]
    assert np.flatnonzero(labels[1]).tolist() == [1, 2, 5, 6, 7] and np.flatnonzero(labels[2]).tolist() == [8]
    assert test.masks is None  # pixel masks only when every test video has them


def test_ucsd_ped2_style_and_parent_folder(tmp_path):
    write_ucsd(tmp_path / "one", "UCSDped2", gt_for=(1, 2, 3), m_file=None)
    test = open_split(f"ucsd:{tmp_path / 'one'}", "testing", CFG)  # the parent holding only UCSDped2
    assert test.masks is not None and test.masks.shape[0] == 7 + 8 + 9
    assert test.labels.sum() == 6 and np.array_equal(test.masks.flatten(1).any(1).numpy(), test.labels.astype(bool))


def test_ucsd_errors_list_what_was_looked_for(tmp_path):
    write_ucsd(tmp_path, "UCSDped1", gt_for=(1,), m_file=None)
    with pytest.raises(DataError, match="has no Test002_gt mask folder and no .m ground-truth file") as err:
        open_split(f"ucsd:{tmp_path / 'UCSDped1'}", "testing", CFG)
    assert "UCSDped1.m" in str(err.value)
    (tmp_path / "UCSDped1" / "Test" / "UCSDped1.m").write_text("TestVideoFile{end+1}.gt_frame = [1:2];\n")
    with pytest.raises(DataError, match="no gt_frame entry for test video Test002"):
        open_split(f"ucsd:{tmp_path / 'UCSDped1'}", "testing", CFG)
    (tmp_path / "UCSDped1" / "Test" / "UCSDped1.m").write_text(PED1_M.replace("[9]", "[9:12]"))
    with pytest.raises(DataError, match=re.escape("interval [9:12] is outside frames 1..9")):
        open_split(f"ucsd:{tmp_path / 'UCSDped1'}", "testing", CFG)
    write_ucsd(tmp_path, "UCSDped2", gt_for=(1, 2, 3), m_file=None)
    with pytest.raises(DataError, match="holds both UCSDped1 and UCSDped2; choose one"):
        open_split(f"ucsd:{tmp_path}", "testing", CFG)
    with pytest.raises(DataError, match="not a UCSD dataset folder; looked for") as err:
        open_split(f"ucsd:{tmp_path / 'UCSDped2' / 'Train'}", "training", CFG)
    assert "UCSDped1" in str(err.value)


def test_a_benchmark_given_as_a_plain_folder_points_to_its_spec(tmp_path):
    root = write_avenue(tmp_path / "avenue")
    with pytest.raises(DataError, match=re.escape(f"looks like CUHK Avenue as downloaded: use --data avenue:{root}")):
        open_split(root, "training", CFG)
    base = write_ucsd(tmp_path, "UCSDped2", gt_for=(1, 2, 3), m_file=None)
    with pytest.raises(DataError, match=re.escape(f"use --data ucsd:{base}")):
        open_split(base, "training", CFG)
