"""Video files as data: decoding (order, exact count, fps), the videos/ layout, single files and
folders of videos, streaming, bad video input, and the synthetic dataset as .avi/.mp4 against
its JPEG frame folders (frame AUROC within 0.02)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import memad
from memad import DataError
from memad.data import open_split, open_video
from memad.data.synthetic import SyntheticSpec, make_synthetic, write_synthetic
from memad.data.video_files import decode_video, write_video

from .conftest import tiny

CFG = {"data": {"image_size": 32, "channels": 3, "pixel_eval_size": 32}, "train": {"progress": False}}


def numbered_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i is flat grey at 8*i + 4 with a white bar: order survives lossy coding."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i] = (8 * i + 4) % 256
        frames[i, 10:20, 5:30] = 250
    return frames


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".mkv", ".mov", ".webm"])
def test_decode_gives_every_frame_in_order_with_fps(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", numbered_frames(24), fps=30)
    frames, fps = decode_video(path)
    assert frames.shape == (24, 3, 48, 64) and frames.dtype == np.uint8
    assert fps == pytest.approx(30.0)
    levels = frames[:, 0, 40, 40].astype(int)
    assert np.abs(levels - (8 * np.arange(24) + 4)).max() <= 3, levels


def test_video_frames_match_image_frames(tmp_path):
    # The same frames as a video and as PNGs: same conversion and bilinear resize, up to coding loss.
    video = make_synthetic("testing", (64, 64), 3, spec=SyntheticSpec(test_videos=1, frames_per_video=20))
    for fmt in ("png", "avi"):
        write_synthetic(tmp_path / fmt, fmt, spec=SyntheticSpec(train_videos=1, test_videos=1, frames_per_video=20))
    cfg = {"data": {"image_size": [24, 40], "channels": 1, "pixel_eval_size": 24}}
    png, avi = (open_split(tmp_path / fmt, "testing", cfg) for fmt in ("png", "avi"))
    assert png.frames.shape == avi.frames.shape == (20, 1, 24, 40)
    assert (png.frames.float() - avi.frames.float()).abs().mean() < 2.5
    assert avi.fps == [25.0] and png.fps is None
    assert np.array_equal(avi.labels, video.labels) and torch.equal(avi.masks, png.masks)


def test_open_video_streams_resized_frames(tmp_path):
    path = write_video(tmp_path / "s.mp4", numbered_frames(10), fps=12.5)
    with open_video(path, size_hw=(16, 20), channels=1) as stream:
        assert stream.fps == pytest.approx(12.5) and (stream.width, stream.height) == (64, 48)
        frames = list(stream)
    assert len(frames) == 10 and frames[0].shape == (16, 20, 1) and frames[0].dtype == np.uint8


def test_videos_layout_mixed_with_frame_folders_and_single_files(tmp_path):
    spec = SyntheticSpec(train_videos=2, test_videos=2, frames_per_video=12)
    write_synthetic(tmp_path / "v", "mp4", spec=spec)
    write_synthetic(tmp_path / "f", "png", spec=spec)
    mixed = tmp_path / "mixed"
    (mixed / "training").mkdir(parents=True)
    (tmp_path / "v" / "training" / "videos").rename(mixed / "training" / "videos")  # training as videos
    (tmp_path / "f" / "testing").rename(mixed / "testing")  # testing as frame folders with masks
    (tmp_path / "f" / "labels.npy").rename(mixed / "labels.npy")
    train, test = open_split(mixed, "training", CFG), open_split(mixed, "testing", CFG)
    assert train.names == ["01", "02"] and train.lengths == [12, 12] and train.fps == [25.0, 25.0]
    assert test.lengths == [12, 12] and test.labels is not None and test.masks is not None
    one = open_split(mixed / "training" / "videos" / "02.mp4", "testing", CFG)  # a single video file
    assert one.names == ["02"] and one.lengths == [12] and one.labels is None
    assert torch.equal(one.frames, train.video(1).frames)
    folder = open_split(mixed / "training" / "videos", "testing", CFG)  # a folder of videos
    assert folder.names == ["01", "02"] and torch.equal(folder.frames, train.frames)


def test_video_masks_are_matched_in_order_and_counted(tmp_path):
    write_synthetic(tmp_path, "avi", spec=SyntheticSpec(train_videos=1, test_videos=1, frames_per_video=12))
    test = open_split(tmp_path, "testing", CFG)
    assert test.masks.shape == (12, 32, 32)
    (tmp_path / "testing" / "masks" / "01" / "011.png").unlink()
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(DataError, match=re.escape("11 masks for the 12 frames of video '01'")):
        open_split(tmp_path, "testing", CFG)


# -- bad video input -----------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"RIFF....AVI not really a video" * 50])
def test_unreadable_video_is_named(tmp_path, content):
    root = tmp_path / "d"
    (root / "training" / "videos").mkdir(parents=True)
    bad = root / "training" / "videos" / "01.avi"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="cannot open as a video") as err:
        open_split(root, "training", CFG)
    assert str(bad) in str(err.value)


def test_truncated_video_warns_and_keeps_whole_frames(tmp_path):
    # A cut-off download: the header declares 40 frames, fewer can be decoded.
    path = write_video(tmp_path / "training" / "videos" / "01.avi", numbered_frames(40))
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    with pytest.warns(UserWarning, match="the file declares 40; it may be truncated"):
        videos = open_split(tmp_path, "training", CFG)
    assert 0 < len(videos) < 40 and videos.frames.shape[1:] == (3, 32, 32)


def test_zero_length_video(tmp_path):
    import av

    path = tmp_path / "training" / "videos" / "01.avi"
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w") as out:  # a valid container with a video stream and no frame
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()
    with pytest.raises(DataError, match="no frames decoded; expected a video with at least one frame") as err:
        open_split(tmp_path, "training", CFG)
    assert str(path) in str(err.value)


def test_label_file_length_differs_from_decoded_count(tmp_path):
    write_synthetic(tmp_path, "avi", spec=SyntheticSpec(train_videos=1, test_videos=2, frames_per_video=10),
                    masks=False)
    np.save(tmp_path / "labels.npy", np.zeros(21, np.int8))
    with pytest.raises(DataError, match=re.escape("21 labels, but the test videos have 20 frames")) as err:
        open_split(tmp_path, "testing", CFG)
    assert str(tmp_path / "labels.npy") in str(err.value)


def test_videos_of_different_sizes_in_one_split(tmp_path):
    write_video(tmp_path / "training" / "videos" / "01.avi", numbered_frames(6, 48, 64))
    write_video(tmp_path / "training" / "videos" / "02.avi", numbered_frames(6, 48, 80))
    with pytest.raises(DataError, match="frames of mixed sizes") as err:
        open_split(tmp_path, "training", CFG)
    assert "64x48" in str(err.value) and "80x48" in str(err.value) and "02.avi" in str(err.value)


def test_frames_and_videos_in_one_split_is_refused(tmp_path):
    write_video(tmp_path / "training" / "videos" / "01.avi", numbered_frames(6))
    (tmp_path / "training" / "frames" / "01").mkdir(parents=True)
    with pytest.raises(DataError, match="both frames/ and videos/"):
        open_split(tmp_path, "training", CFG)


def test_a_file_that_is_not_a_video(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="a file, but not a video"):
        open_split(tmp_path / "notes.txt", "testing", CFG)


# -- the acceptance check: same AUROC from JPEG frames and from .avi/.mp4 ------------------------
def test_synthetic_as_video_files_gives_the_jpeg_auroc(tmp_path):
    # Quick-start size (64x64). One model (ae, one epoch: 120 steps), trained on the frames decoded from
    # the .mp4 files, scores the test split of each copy of the data, so decoding is the only difference
    # between the three AUROCs. (Three models trained each on its own copy differ by their training
    # runs too: the few lossy pixels of a video change the trajectory, and that moved the AUROC by
    # up to 0.024, which says nothing about how the videos decode.)
    overrides = tiny(data={"image_size": 64, "channels": 1}, train={"epochs": 1},
                     scorer={"normalise": "global"}, test={"mode": "batched"})
    roots = {fmt: write_synthetic(tmp_path / fmt, fmt, masks=False) for fmt in ("jpg", "avi", "mp4")}
    det = memad.build("ae", **overrides)
    det.fit(roots["mp4"])
    auroc = {fmt: det.evaluate(root)["frame_auroc"] for fmt, root in roots.items()}
    assert all(math.isfinite(v) for v in auroc.values()), auroc
    assert auroc["jpg"] > 0.8, auroc  # the comparison means something only if the model learned
    assert abs(auroc["avi"] - auroc["jpg"]) <= 0.02 and abs(auroc["mp4"] - auroc["jpg"]) <= 0.02, auroc
