"""Training clips from memory and from the frame cache: the same clips in the same order, each rank
its own shard; a real torchrun of 2 CPU processes training from the disk cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from memad import DataError, distributed
from memad.data import ClipBatches, epoch_order, gather_clips, open_split
from memad.data.clips import holdout_videos
from memad.data.synthetic import SyntheticSpec, write_synthetic
from memad.data.video_files import write_video

CPU = torch.device("cpu")
SPEC = SyntheticSpec(train_videos=3, test_videos=1, frames_per_video=14)


def config(cache: Path, in_memory: bool) -> dict:
    return {"data": {"image_size": 16, "channels": 1, "pixel_eval_size": 16, "in_memory": in_memory,
                     "cache_dir": str(cache)}, "train": {"progress": False}}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_synthetic(root / "data", "png", spec=SPEC, masks=False)
    return (open_split(root / "data", "training", config(root / "cache", True)),
            open_split(root / "data", "training", config(root / "cache", False)))


@pytest.mark.parametrize("workers", [0, 2])
def test_disk_batches_equal_memory_batches(splits, workers):
    in_mem, on_disk = splits
    assert on_disk.on_disk and not in_mem.on_disk
    a = ClipBatches(in_mem, 5, 4, seed=3, device=CPU, max_steps=6)
    b = ClipBatches(on_disk, 5, 4, seed=3, device=CPU, max_steps=6, workers=workers)
    for epoch in (0, 1):
        got_a, got_b = list(a.epoch(epoch)), list(b.epoch(epoch))
        assert len(got_a) == len(got_b) == 6
        assert all(torch.equal(x, y) and x.shape == (4, 5, 1, 16, 16) for x, y in zip(got_a, got_b))
    assert not torch.equal(list(a.epoch(0))[0], list(a.epoch(1))[0])  # a new order each epoch


def test_order_is_the_training_order(splits):
    # Step s takes starts[shard(epoch_order)[s*bs:(s+1)*bs]]: the order training always used.
    videos = splits[1]
    batches = ClipBatches(videos, 5, 2, seed=7, device=CPU, rank=1, world=2)
    starts = torch.from_numpy(videos.clip_starts(5))
    order = distributed.shard(epoch_order(len(starts), 7, 4), rank=1, world=2)
    rows = batches.epoch_starts(4)
    for step, clips in enumerate(batches.epoch(4)):
        idx = starts[order[step * 2:(step + 1) * 2]]
        assert torch.equal(rows[step], idx)
        assert torch.equal(clips, gather_clips(videos.frames, idx, 5))


def test_ranks_read_disjoint_clips(splits):
    videos = splits[1]
    per_rank = [ClipBatches(videos, 5, 3, seed=0, device=CPU, rank=r, world=2).epoch_starts(2) for r in (0, 1)]
    a, b = (set(x.flatten().tolist()) for x in per_rank)
    assert a and not a & b
    n = len(videos.clip_starts(5))
    assert len(a | b) == 2 * per_rank[0].numel() <= n


def test_video_shorter_than_a_clip_is_named(tmp_path):
    write_video(tmp_path / "training" / "videos" / "long.avi", np.zeros((12, 16, 16, 3), np.uint8))
    write_video(tmp_path / "training" / "videos" / "short.avi", np.zeros((3, 16, 16, 3), np.uint8))
    videos = open_split(tmp_path, "training", config(tmp_path / "cache", True))
    with pytest.raises(DataError, match="3 frames, shorter than one clip; expected at least 5 frames") as err:
        ClipBatches(videos, 5, 2, seed=0, device=CPU)
    assert str(tmp_path / "training" / "videos" / "short.avi") in str(err.value)


# -- torchrun: 2 CPU processes training from the disk cache ------------------------------------------
DRIVER = r'''
import json, os, sys
import memad
from memad.data import clips

out = sys.argv[2]
real = clips._ClipReader.__getitem__

def logged(self, starts):  # runs in the DataLoader worker: one line per batch read
    with open(os.path.join(out, f"reads-{os.environ['RANK']}.jsonl"), "a") as fh:
        fh.write(json.dumps(list(starts)) + "\n")
    return real(self, starts)

clips._ClipReader.__getitem__ = logged
det = memad.build("mnad_recon", data={"image_size": 16, "channels": 1, "in_memory": False, "cache_dir": out + "/cache",
                                      "workers": 1},
                  encoder={"widths": [8, 16, 32, 64]}, train={"epochs": 2, "batch_size": 2, "max_steps_per_epoch": 3,
                                                             "progress": False, "device": "cpu"})
det.fit(sys.argv[1])
with open(os.path.join(out, f"history-{os.environ['RANK']}.json"), "w") as fh:
    json.dump(det.history_, fh)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_torchrun_trains_from_the_disk_cache_with_disjoint_shards(tmp_path):
    data = write_synthetic(tmp_path / "data", "avi", spec=SPEC, masks=False)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "driver.py").write_text(DRIVER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(tmp_path / "driver.py"), str(data), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    entries = [p for p in (out / "cache").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1  # both ranks opened one cache entry: one built it, the other waited
    reads = {r: [json.loads(line) for line in (out / f"reads-{r}.jsonl").read_text().splitlines()] for r in (0, 1)}
    videos = open_split(data, "training", config(out / "cache", False))
    n = len(videos.lengths)
    trained = [i for i in range(n) if i not in holdout_videos(n, 0.25)]  # train.holdout's default keeps some out
    for epoch in (0, 1):
        mine = [ClipBatches(videos, 1, 2, seed=0, device=CPU, max_steps=3, rank=r, world=2, only=trained
                            ).epoch_starts(epoch) for r in (0, 1)]
        for r in (0, 1):
            assert reads[r][3 * epoch:3 * epoch + 3] == mine[r].tolist()  # this rank's shard, in order
        assert not set(mine[0].flatten().tolist()) & set(mine[1].flatten().tolist())
    assert len(reads[0]) == len(reads[1]) == 6
    h0, h1 = (json.loads((out / f"history-{r}.json").read_text()) for r in (0, 1))
    same = [{k: v for k, v in e.items() if k != "seconds"} for e in h0]
    assert len(h0) == 2 and same == [{k: v for k, v in e.items() if k != "seconds"} for e in h1]
    assert all(np.isfinite(e["loss"]) for e in h0)
