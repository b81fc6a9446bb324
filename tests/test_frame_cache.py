"""The on-disk frame cache: built once and reused, rebuilt when a source file changes, never trusted
when truncated, damaged or half-written; ``data.in_memory`` choosing between memory and the cache."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from memad import DataError
from memad.data import loading, open_split
from memad.data.cache import FRAMES, MANIFEST, verify
from memad.data.synthetic import SyntheticSpec, write_synthetic
from memad.data.video_files import write_video

SPEC = SyntheticSpec(train_videos=2, test_videos=2, frames_per_video=12)


def config(cache: Path, in_memory: bool | str = False, budget: float = 4.0) -> dict:
    return {"data": {"image_size": 32, "channels": 3, "pixel_eval_size": 16, "in_memory": in_memory,
                     "memory_budget_gb": budget, "cache_dir": str(cache)}, "train": {"progress": False}}


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_synthetic(tmp_path / "data", "png", spec=SPEC)


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """Records every decode into the cache (loading._fill called with a file sink)."""
    seen: list[str] = []
    real = loading._fill

    def counting(src, sink, *args, **kw):
        if not isinstance(sink, loading._RamSink):
            seen.append(src.source)
        return real(src, sink, *args, **kw)

    monkeypatch.setattr(loading, "_fill", counting)
    return seen


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_cache_matches_memory_and_is_reused(tmp_path, dataset, builds):
    cache = tmp_path / "cache"
    in_mem = open_split(dataset, "testing", config(cache, True))
    assert not in_mem.on_disk and not cache.exists()  # in memory: nothing written
    on_disk = open_split(dataset, "testing", config(cache))
    assert on_disk.on_disk and builds == [str(dataset / "testing" / "frames")]
    assert torch.equal(on_disk.frames, in_mem.frames) and np.array_equal(on_disk.labels, in_mem.labels)
    assert torch.equal(on_disk.masks, in_mem.masks) and on_disk.frame_files == in_mem.frame_files
    assert on_disk.lengths == in_mem.lengths and on_disk.names == in_mem.names
    assert np.array_equal(on_disk.store.read(13, 3), in_mem.frames[13:16].numpy())
    again = open_split(dataset, "testing", config(cache))
    assert len(builds) == 1 and torch.equal(again.frames, in_mem.frames)  # reused, not rebuilt
    open_split(dataset, "training", config(cache))
    assert len(builds) == 2 and len(entries(cache)) == 2  # one entry per split
    open_split(dataset, "training", {**config(cache), "data": {**config(cache)["data"], "image_size": 16}})
    assert len(builds) == 3 and len(entries(cache)) == 3  # and per size


def test_video_file_split_through_the_cache_keeps_fps(tmp_path, builds):
    write_video(tmp_path / "d" / "training" / "videos" / "a.avi", np.full((9, 32, 32, 3), 90, np.uint8), fps=15)
    videos = open_split(tmp_path / "d", "training", config(tmp_path / "c"))
    assert videos.on_disk and videos.fps == [15.0] and videos.lengths == [9]
    assert open_split(tmp_path / "d", "training", config(tmp_path / "c")).fps == [15.0] and len(builds) == 1


def test_changed_source_file_rebuilds(tmp_path, dataset, builds):
    cache = tmp_path / "cache"
    first = open_split(dataset, "training", config(cache))
    frame = dataset / "training" / "frames" / "02" / "005.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (255, 255, 255)).save(frame)
    second = open_split(dataset, "training", config(cache))
    assert len(builds) == 2
    assert (second.frames[12 + 5] == 255).all() and not torch.equal(first.frames[17], second.frames[17])


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "no_manifest"])
def test_damaged_cache_is_rebuilt_not_read(tmp_path, dataset, builds, damage):
    cache = tmp_path / "cache"
    good = open_split(dataset, "training", config(cache)).frames.clone()
    (entry,) = entries(cache)
    frames = entry / FRAMES
    if damage == "truncate":
        with open(frames, "r+b") as fh:
            fh.truncate(frames.stat().st_size - 100)
    elif damage == "flip":
        data = bytearray(frames.read_bytes())
        data[len(data) // 2] ^= 0xFF
        frames.write_bytes(bytes(data))
    elif damage == "manifest":
        text = (entry / MANIFEST).read_text()
        (entry / MANIFEST).write_text(text.replace('"lengths": [12, 12]', '"lengths": [11, 13]'))
    else:
        (entry / MANIFEST).unlink()
    assert verify(entry) is not None
    with pytest.warns(UserWarning, match="frame cache not trusted"):
        again = open_split(dataset, "training", config(cache))
    assert len(builds) == 2 and torch.equal(again.frames, good)
    assert verify(entries(cache)[0], full=True) is None


def test_interrupted_build_leaves_nothing_trusted(tmp_path, dataset, monkeypatch):
    cache = tmp_path / "cache"
    bad = dataset / "training" / "frames" / "02" / "007.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image"):
        open_split(dataset, "training", config(cache))
    assert entries(cache) == [] and not [p for p in cache.iterdir() if ".tmp-" in p.name]
    # A build killed outright leaves its temporary folder; the next build removes it.
    from PIL import Image

    Image.new("RGB", (64, 64)).save(bad)
    key_name = _entry_name_for(dataset, cache)
    stale = cache / f".{key_name}.tmp-99999-dead"
    (stale / "sub").mkdir(parents=True)
    open_split(dataset, "training", config(cache))
    assert not stale.exists() and [p.name for p in entries(cache)] == [key_name]


def _entry_name_for(dataset: Path, cache: Path) -> str:
    from memad.data.cache import _entry_name, cache_key
    from memad.data.layout import standard_split

    src = standard_split(dataset, "training")
    return _entry_name(src, (32, 32), 3, cache_key(src, (32, 32), 3, (16, 16)))


def test_auto_keeps_small_splits_in_memory(tmp_path, dataset):
    cache = tmp_path / "cache"
    small = open_split(dataset, "training", config(cache, "auto", budget=1.0))
    assert not small.on_disk and not cache.exists()
    # 24 frames of 32x32x3 = 73,728 bytes: a budget below that sends the split to the cache
    big = open_split(dataset, "training", config(cache, "auto", budget=70_000 / 2**30))
    assert big.on_disk and torch.equal(big.frames, small.frames)


def test_bad_in_memory_value(tmp_path, dataset):
    cfg = config(tmp_path)
    cfg["data"]["in_memory"] = "sometimes"
    with pytest.raises(ValueError, match=re.escape("data.in_memory='sometimes': expected true, false or auto")):
        open_split(dataset, "training", cfg)


def test_unwritable_cache_dir_is_named(tmp_path, dataset):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot create the frame cache folder") as err:
        open_split(dataset, "training", config(blocker / "cache"))
    assert str(blocker / "cache") in str(err.value)


def test_video_views_and_streaming_read_from_disk(tmp_path, dataset):
    from memad.data import iter_videos, video_frames

    on_disk = open_split(dataset, "testing", config(tmp_path / "cache"))
    one = on_disk.video(1)
    assert one.on_disk and torch.equal(one.frames, on_disk.frames[12:24])
    assert np.array_equal(one.store.read(0, 12), on_disk.frames[12:24].numpy())
    assert torch.equal(video_frames(on_disk, 1), on_disk.frames[12:24])
    streamed = list(iter_videos(on_disk, [1, 0]))
    assert [i for i, _ in streamed] == [1, 0] and torch.equal(streamed[1][1], on_disk.frames[:12])


def test_manifest_records_what_was_built(tmp_path, dataset):
    open_split(dataset, "testing", config(tmp_path / "cache"))
    (entry,) = entries(tmp_path / "cache")
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["shape"] == [24, 3, 32, 32] and manifest["lengths"] == [12, 12] and manifest["masks"]
    assert (entry / FRAMES).stat().st_size == 24 * 3 * 32 * 32
    assert os.access(entry / FRAMES, os.R_OK)


def test_bad_video_during_a_cache_build_leaves_nothing(tmp_path):
    good = np.full((8, 32, 32, 3), 120, np.uint8)
    write_video(tmp_path / "d" / "training" / "videos" / "01.avi", good)
    (tmp_path / "d" / "training" / "videos" / "02.avi").write_bytes(b"\x00" * 4096)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="02.avi: cannot open as a video"):
        open_split(tmp_path / "d", "training", config(cache))
    # Found while sizing the split, before anything is written: neither an entry nor a temporary folder.
    assert not cache.exists() or not [p for p in cache.iterdir() if p.is_dir()]
