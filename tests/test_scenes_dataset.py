"""The ``scenes`` dataset: deterministic per seed, scenes that differ between videos (and do not at
variety 0), labels that follow the masks, masks that cover exactly what the event changed, events
that leave across an edge, normal training videos, and one-line errors for bad specs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from memad import DataError
from memad.cli import main as cli_main
from memad.data import open_split
from memad.registry import get_registry
from memad_plugins.datasets.scene_video import EVENTS
from memad_plugins.datasets.scenes import ScenesSpec, make_scenes, parse_spec, render_split, scene_table

SMALL = ScenesSpec(train=3, test=3, frames=20, test_frames=50)
CFG = {"data": {"image_size": 32, "channels": 1, "pixel_eval_size": 16}}


def grey(frames: np.ndarray) -> np.ndarray:
    return frames.astype(float) @ np.array([0.299, 0.587, 0.114])


def per_video_scene_stats(spec: ScenesSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Per video: mean grey level and high-pass texture energy of its median frame (the walkers removed)."""
    frames, _, lengths, _ = render_split(spec, split)
    bright, texture = [], []
    for video in np.split(grey(frames), np.cumsum(lengths)[:-1]):
        background = np.median(video, axis=0)
        bright.append(background.mean())
        texture.append((background - gaussian_filter(background, 2)).std())
    return np.array(bright), np.array(texture)


def test_same_spec_same_frames_and_another_seed_other_frames():
    a = make_scenes("testing", (32, 32), 1, 16, SMALL)
    b = make_scenes("testing", (32, 32), 1, 16, SMALL)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.masks, b.masks) and np.array_equal(a.labels, b.labels)
    other = make_scenes("testing", (32, 32), 1, 16, ScenesSpec(**{**SMALL.__dict__, "seed": 1}))
    assert not torch.equal(a.frames, other.frames)
    # Through the registry, "scenes:SEED" and "scenes:key=value" are the same dataset.
    assert torch.equal(open_split("scenes:4", "training", CFG).frames,
                       make_scenes("training", (32, 32), 1, 16, ScenesSpec(seed=4)).frames)
    spec = "scenes:train=3,test=3,frames=20,test_frames=50"
    assert torch.equal(open_split(spec, "testing", CFG).frames, a.frames)


def test_a_video_does_not_depend_on_how_many_videos_there_are():
    few, _, _, _ = render_split(ScenesSpec(train=2, frames=20), "training")
    many, _, _, _ = render_split(ScenesSpec(train=5, frames=20), "training")
    assert np.array_equal(few, many[:40])


def test_scenes_differ_between_videos():
    """8 training videos (seed 0): mean grey level spread (std) over 10 levels, texture energy of the
    most textured scene over 1.5 times the least textured one, at least 3 crowd sizes; the test videos
    are new scenes, none a training scene."""
    bright, texture = per_video_scene_stats(ScenesSpec(), "training")
    assert bright.std() > 10 and texture.max() / texture.min() > 1.5, (bright, texture)
    table = scene_table(ScenesSpec(), "training")
    assert len({row["walkers"] for row in table}) >= 3 and len({row["kind"] for row in table}) >= 2
    test_bright, _ = per_video_scene_stats(ScenesSpec(), "testing")
    assert test_bright.std() > 10
    assert np.abs(test_bright[:, None] - bright[None]).min() > 0.1  # no test scene is a training one


def test_variety_0_gives_every_video_the_same_scene():
    bright, texture = per_video_scene_stats(ScenesSpec(variety=0), "training")
    assert bright.std() < 0.5 and texture.max() / texture.min() < 1.02, (bright, texture)
    rows = [{k: v for k, v in r.items() if k not in ("video", "event")} for r in scene_table(ScenesSpec(variety=0),
                                                                                              "testing")]
    assert all(r == rows[0] for r in rows)


def test_a_cameras_own_footage_is_its_test_videos_scene_at_other_times():
    """camera=k: every training video shows test video k's scene (its median frame, the walkers removed,
    correlates with test video k's at over 0.99 and with another test video's at under 0.9), with other
    walkers and noise, no event, and the light's drift at a phase of its own."""
    spec = ScenesSpec(train=3, test=3, frames=40, test_frames=50, camera=2)
    own, _, own_lengths, events = render_split(spec, "training")
    test, _, test_lengths, _ = render_split(spec, "testing")
    assert events == [None] * 3 and own_lengths == [40] * 3
    medians = [np.median(grey(v), axis=0) for v in np.split(own, np.cumsum(own_lengths)[:-1])]
    tests = [np.median(grey(v), axis=0) for v in np.split(test, np.cumsum(test_lengths)[:-1])]
    for m in medians:
        r = [np.corrcoef(m.ravel(), t.ravel())[0, 1] for t in tests]
        assert r[1] > 0.99 and max(r[0], r[2]) < 0.9, r
    assert not np.array_equal(own[:40], own[40:80])  # other walkers in each video
    rows, scene = scene_table(spec, "training"), scene_table(spec, "testing")[1]
    assert all({k: v for k, v in r.items() if k not in ("video", "event", "drift_phase")} ==
               {k: v for k, v in scene.items() if k not in ("video", "event", "drift_phase")} for r in rows)
    assert len({r["drift_phase"] for r in rows} | {scene["drift_phase"]}) == 4
    # the test split is the same with or without the option
    assert np.array_equal(test, render_split(ScenesSpec(train=3, test=3, frames=40, test_frames=50), "testing")[0])


@pytest.mark.parametrize("size,mask_size", [((64, 64), 64), ((32, 48), 16)])
def test_labels_are_the_frames_whose_mask_holds_a_pixel(size, mask_size):
    test = make_scenes("testing", size, 3, mask_size, SMALL)
    assert test.masks.shape[1:] == ((64, 64) if mask_size == 64 else (11, 16))
    assert np.array_equal(test.labels.astype(bool), test.masks.flatten(1).any(1).numpy())
    assert 0 < test.labels.mean() < 0.6


def test_masks_cover_exactly_what_the_event_changed():
    """The same videos rendered without their events differ from them only inside the masks, and
    inside them in most pixels (the object is visible where it is marked)."""
    frames, masks, _, _ = render_split(SMALL, "testing")
    plain, no_masks, _, _ = render_split(SMALL, "testing", draw_events=False)
    assert not no_masks.any()
    changed = (frames != plain).any(axis=-1)
    assert not (changed & ~masks).any()
    assert changed[masks].mean() > 0.5


def test_events_end_with_the_object_leaving_across_an_edge():
    spec = ScenesSpec(test=6, normal=1)
    test = make_scenes("testing", (64, 64), 1, 64, spec)
    far_from_events = 0
    for v, n in enumerate(test.lengths):
        video = test.video(v)
        anomalous = np.flatnonzero(video.labels)
        if v == len(test.lengths) - 1:
            assert anomalous.size == 0  # the last test video is fully normal
            continue
        assert np.array_equal(anomalous, np.arange(anomalous[0], anomalous[-1] + 1))  # one unbroken stretch
        assert anomalous[-1] + 1 < n  # it ends inside the video ...
        last = video.masks[anomalous[-1]].numpy()
        assert last[0].any() or last[-1].any() or last[:, 0].any() or last[:, -1].any(), f"video {v}"  # at an edge
        distance = np.abs(np.arange(n)[:, None] - anomalous[None]).min(axis=1)
        far_from_events += int((distance[4:] >= 10).sum())  # scored frames (mnad_pred: from the 5th on)
    assert far_from_events >= 20
    assert [e for e in scene_table(spec, "testing")] and {r["event"] for r in scene_table(spec, "testing")} == {
        *EVENTS, None}


def test_training_split_is_normal():
    train = make_scenes("training", (32, 32), 3, 16, SMALL)
    assert train.labels is None and train.masks is None and train.frames.shape == (60, 3, 32, 32)
    _, masks, _, events = render_split(ScenesSpec(), "training")
    assert not masks.any() and events == [None] * 8


def test_registered_and_parsed():
    assert "scenes" in get_registry().names("dataset")
    assert parse_spec(None) == parse_spec("") == ScenesSpec()
    assert parse_spec("7") == ScenesSpec(seed=7)
    assert parse_spec(" seed = 2 , variety=0.25,normal=2") == ScenesSpec(seed=2, variety=0.25, normal=2)


@pytest.mark.parametrize("arg,message", [
    ("trian=3", "dataset 'scenes': unknown option 'trian'; did you mean 'train'?"),
    ("train=abc", "dataset 'scenes': option train='abc': expected an integer"),
    ("variety=2", "dataset 'scenes': option variety=2.0: expected a number from 0 to 1"),
    ("variety=lots", "dataset 'scenes': option variety='lots': expected a number from 0 to 1"),
    ("seed", "dataset 'scenes': 'seed' is not key=value"),
    ("train=3,,test=2", "dataset 'scenes': '' is not key=value"),
    ("train=3,train=4", "dataset 'scenes': option 'train' given twice"),
    ("normal=7", "dataset 'scenes': option normal=7: expected at most test=6"),
    ("camera=7", "dataset 'scenes': option camera=7: expected 0 (training scenes of their own) or a test video "
                 "from 1 to test=6"),
    ("size=16", "dataset 'scenes': option size=16: expected an integer from 32 to 512"),
    ("test_frames=20", "dataset 'scenes': option test_frames=20: expected an integer from 40 to 10000"),
])
def test_bad_specs_are_one_line_naming_the_option(arg, message):
    with pytest.raises(DataError, match=re.escape(message)) as err:
        parse_spec(arg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_spec_on_the_command_line_is_one_error_line(tmp_path, capsys):
    assert cli_main(["train", "ae", "--data", "scenes:trian=3", "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("memad: error: dataset 'scenes': unknown option 'trian'")
    assert sum(line.startswith("memad: error:") for line in err) == 1


def test_label_files_are_refused():
    with pytest.raises(DataError, match="has its own labels"):
        open_split("scenes", "testing", CFG, labels="labels.npy")
