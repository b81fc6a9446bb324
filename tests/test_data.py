"""Frame folders, label formats, clips and the synthetic dataset."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from memad.data import gather_clips, load_frame_folder, open_split, to_float
from memad.data.labels import load_label_file
from memad.data.synthetic import make_synthetic

PED2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ped2"


def write_video(folder: Path, values, names=None, size=(12, 8)):
    """Frames whose pixels all equal ``values[i]``, named ``names[i]`` (default 0-based)."""
    folder.mkdir(parents=True)
    for i, v in enumerate(values):
        name = names[i] if names else f"{i:03d}.png"
        Image.fromarray(np.full((size[1], size[0], 3), v, dtype=np.uint8)).save(folder / name)


def test_frames_sorted_numerically_not_alphabetically(tmp_path):
    # names 8, 9, 10, 11 (not starting at 0, no zero padding): alphabetical order would put 10 first
    write_video(tmp_path / "training" / "frames" / "01", [80, 90, 100, 110], ["8.png", "9.png", "10.png", "11.png"])
    vs = load_frame_folder(tmp_path, "training", (8, 8), 3)
    assert vs.frames[:, 0, 0, 0].tolist() == [80, 90, 100, 110]
    assert vs.lengths == [4] and vs.names == ["01"]


def test_resize_and_grayscale(tmp_path):
    write_video(tmp_path / "training" / "frames" / "a", [10, 20], size=(30, 20))
    vs = load_frame_folder(tmp_path, "training", (16, 24), 1)
    assert vs.frames.shape == (2, 1, 16, 24) and vs.frames.dtype == torch.uint8


def make_test_split(root: Path, lengths=(5, 4)):
    for v, n in enumerate(lengths):
        write_video(root / "testing" / "frames" / f"{v + 1:02d}", [50] * n)


def test_labels_from_npy_1d_and_2d(tmp_path):
    make_test_split(tmp_path)
    lab = np.array([0, 0, 1, 1, 0, 1, 1, 0, 0])
    np.save(tmp_path / "a.npy", lab)
    np.save(tmp_path / "b.npy", lab[None])
    for name in ("a.npy", "b.npy"):
        vs = load_frame_folder(tmp_path, "testing", (8, 8), 3, labels=tmp_path / name)
        assert vs.labels.tolist() == lab.tolist()


def test_labels_from_mat_intervals_are_one_based_inclusive(tmp_path):
    make_test_split(tmp_path)
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0] = np.array([[2], [3]])  # frames 2..3 (1-based) of video 1
    cells[0, 1] = np.array([[1, 4], [1, 4]])  # two intervals: frame 1 and frame 4 of video 2
    savemat(tmp_path / "gt.mat", {"gt": cells})
    vs = load_frame_folder(tmp_path, "testing", (8, 8), 3)  # found in the root
    assert vs.labels.tolist() == [0, 1, 1, 0, 0, 1, 0, 0, 1]


def test_labels_and_masks_from_masks_folder(tmp_path):
    make_test_split(tmp_path, lengths=(3,))
    mask_dir = tmp_path / "testing" / "masks" / "01"
    mask_dir.mkdir(parents=True)
    for i in range(3):
        m = np.zeros((8, 12), dtype=np.uint8)
        if i == 1:
            m[0, 0] = 255  # a single anomalous pixel must survive the resize
        Image.fromarray(m).save(mask_dir / f"{i:03d}.png")
    vs = load_frame_folder(tmp_path, "testing", (4, 4), 3)
    assert vs.labels.tolist() == [0, 1, 0]
    assert vs.masks.shape == (3, 4, 4) and vs.masks[1].sum() >= 1 and vs.masks[[0, 2]].sum() == 0


def test_clip_starts_stay_inside_videos():
    vs = make_synthetic("training", (16, 16), channels=1)
    starts = vs.clip_starts(5)
    ends = starts + 4
    video_of = vs.video_index
    assert (video_of[starts] == video_of[ends]).all()
    assert len(starts) == sum(n - 4 for n in vs.lengths)
    clips = gather_clips(vs.frames, torch.from_numpy(starts[:3]), 5)
    assert clips.shape == (3, 5, 1, 16, 16)
    assert torch.equal(clips[1, 2], vs.frames[starts[1] + 2])
    x = to_float(clips)
    assert x.min() >= -1 and x.max() <= 1


def test_synthetic_is_deterministic_and_labelled():
    a = make_synthetic("testing", (32, 32), channels=3)
    b = make_synthetic("testing", (32, 32), channels=3)
    assert torch.equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert torch.equal(a.frames[:, 0], a.frames[:, 2])  # a grey scene in 3 channels, like Ped2
    # every test video has an anomalous stretch, and a frame is labelled iff its mask is set
    for v in range(len(a.lengths)):
        assert 0 < a.video(v).labels.sum() < a.lengths[v]
    assert np.array_equal(a.masks.flatten(1).any(1).numpy(), a.labels.astype(bool))
    train = make_synthetic("training", (32, 32))
    assert train.labels is None and not torch.equal(train.frames[:60], a.frames[:60])


def test_synthetic_events_end_with_the_object_leaving_across_an_edge():
    """An anomalous object may appear anywhere, but its last frame shows it at the scene's edge, so the
    frames after an event hold nothing anomalous (a vanishing object would stay in a predictor's input)."""
    test = make_synthetic("testing", (64, 64), channels=1)
    for v in range(len(test.lengths)):
        video = test.video(v)
        labels = video.labels.astype(bool)
        anomalous = np.flatnonzero(labels)
        assert np.array_equal(anomalous, np.arange(anomalous[0], anomalous[-1] + 1))  # one unbroken stretch
        if anomalous[-1] + 1 < len(labels):  # the event ends inside the video: the object was leaving
            last = video.masks[anomalous[-1]].numpy()
            assert last[0].any() or last[-1].any() or last[:, 0].any() or last[:, -1].any(), f"video {v}"


def test_open_split_resolves_names_and_paths(tmp_path):
    cfg = {"data": {"image_size": 16, "channels": 1, "pixel_eval_size": 16}}
    assert open_split("synthetic", "training", cfg).frames.shape[1:] == (1, 16, 16)
    with pytest.raises(ValueError, match="not a registered dataset"):
        open_split(tmp_path / "nope", "training", cfg)


@pytest.mark.skipif(not PED2.is_dir(), reason="shared Ped2 data not present")
def test_real_ped2_labels_agree_across_formats():
    masks_cfg = load_frame_folder(PED2, "testing", (16, 16), 1, mask_size=16)
    assert masks_cfg.lengths == [180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180]
    npy = load_label_file(PED2.parent / "labels" / "frame_labels_ped2.npy", masks_cfg.lengths)
    assert int(npy.sum()) == 1648
    assert np.array_equal(masks_cfg.labels, npy)  # labels from ped2.mat (found in the root) = the .npy
