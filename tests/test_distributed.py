"""Training and evaluation on 2 CPU processes (gloo) against one process on the same global batch.

One ``torch.multiprocessing.spawn`` of 2 ranks (set up as torchrun would, through the
environment) runs every distributed check and saves what it saw; the tests compare that
with single-process runs here. A second test launches the real CLI under torchrun.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import memad
from memad import distributed
from memad.data import VideoSet
from memad.data.clips import epoch_order as _epoch_order
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.scoring.runner import score_videos
from memad.training import write_memory

from .conftest import tiny

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

WORLD = 2
PER_RANK_BATCH = 2
RULES = ("mnad", "mnad_code", "ema")
STEPS = 3
CONFIG_LR = 2e-4  # train.lr of the mnad presets
#: Single-channel tiny models; two training steps per epoch; a constant learning rate, so that
#: one epoch plus one resumed epoch is the same as two epochs in one go.
CONFIG = tiny(data={"image_size": 32, "channels": 1},
              train={"batch_size": PER_RANK_BATCH, "max_steps_per_epoch": 2, "scheduler": "constant"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _still_video(frames: int = 12) -> VideoSet:
    # Every frame the same textured image: every clip is the same, so a batch's BatchNorm
    # statistics do not depend on how many clips it holds, and 2 ranks x 2 clips must train
    # exactly as 1 process x 4 clips (BatchNorm aside, any data would do; see test_shard_*).
    g = torch.Generator().manual_seed(7)
    image = torch.randint(0, 256, (1, 1, 32, 32), generator=g, dtype=torch.uint8)
    return VideoSet(image.expand(frames, -1, -1, -1).contiguous(), ["still"], [frames], source="still")


def _test_videos() -> VideoSet:
    # Three short synthetic test videos (20 scored frames each): 2 on one rank, 1 on the other.
    return make_synthetic("testing", (32, 32), channels=1, spec=SyntheticSpec(test_videos=3, frames_per_video=24))


def _queries(rule_index: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + rule_index)
    return torch.randn(STEPS, WORLD * PER_RANK_BATCH, 64, 4, 4, generator=g)  # (steps, global batch, C, h, w)


def _memory_items(rule: str, features: torch.Tensor, channels_last: bool = False) -> list[torch.Tensor]:
    """Items after each training step of the prototype memory on ``features[step]``."""
    mem = memad.build("mnad_pred", **CONFIG, **{"memory.update": rule}).memory.train()
    out = []
    for step in range(features.shape[0]):
        batch = features[step].contiguous(memory_format=torch.channels_last) if channels_last else features[step]
        write_memory(mem, mem(batch).query)  # the training loop's write: gathered over the ranks
        out.append(mem.items.clone())
    return out


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    device = distributed.setup("cpu")
    assert device.type == "cpu" and distributed.is_distributed() and distributed.rank() == rank
    saved: dict = {}

    # 1. The memory update alone: this rank's half of each global batch of queries.
    mine = slice(rank * PER_RANK_BATCH, (rank + 1) * PER_RANK_BATCH)
    for i, rule in enumerate(RULES):
        saved[f"items/{rule}"] = _memory_items(rule, _queries(i)[:, mine])
    saved["items/mnad/channels_last"] = _memory_items("mnad", _queries(0)[:, mine], channels_last=True)

    # 2. train(): one epoch, then a second run resumes from rank 0's checkpoint to reach two.
    run = Path(out) / "run"
    memad.build("mnad_pred", **CONFIG).fit(_still_video(), epochs=1, out=run)
    det = memad.build("mnad_pred", **CONFIG)
    summary = det.fit(_still_video(), epochs=2, out=run).fit_summary_
    saved["summary"] = summary
    saved["state"] = {k: v.clone() for k, v in det.state_dict().items()}
    saved["history"] = det.history_

    # 3. Evaluation sharded by video, with reset=video and with reset=never (forced to video).
    for reset in ("video", "never"):
        det.config["test"]["reset"] = reset
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = score_videos(det, _test_videos())
        saved[f"scores/{reset}"] = (scores.scores, scores.frame, scores.stats.psnr, scores.stats.distance)
        saved[f"warned/{reset}"] = [str(w.message) for w in caught if "test.reset" in str(w.message)]
    torch.save(saved, Path(out) / f"rank{rank}.pt")
    distributed.teardown()


@pytest.fixture(autouse=True)
def one_thread():
    # The workers compute with one thread each; so does the single-process reference.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("ddp")
    # fork: the workers inherit the loaded plugins instead of importing everything again (seconds each).
    memad.build("mnad_pred", **CONFIG)
    torch.multiprocessing.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True,
                                          start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], out


@pytest.mark.parametrize("rule", RULES)
def test_memory_update_equals_one_process_on_the_global_batch(ranks, rule):
    saved, _ = ranks
    single = _memory_items(rule, _queries(RULES.index(rule)))
    initial = memad.build("mnad_pred", **CONFIG).memory.items
    for step in range(STEPS):
        a, b = saved[0][f"items/{rule}"][step], saved[1][f"items/{rule}"][step]
        assert torch.equal(a, b), f"{rule}: ranks disagree after step {step + 1}"
        torch.testing.assert_close(a, single[step], rtol=0, atol=1e-6)
    assert (single[-1] - initial).abs().max() > 1e-3  # the items did move
    if rule == "mnad":  # channels-last queries (train.channels_last on GPUs) gather the same
        for step in range(STEPS):
            torch.testing.assert_close(saved[0]["items/mnad/channels_last"][step], single[step], rtol=0, atol=1e-6)


def test_training_equals_one_process_and_ranks_agree(ranks):
    saved, out = ranks
    assert saved[0]["summary"]["processes"] == WORLD and saved[0]["summary"]["steps_per_epoch"] == 2
    for key, value in saved[0]["state"].items():
        assert torch.equal(value, saved[1]["state"][key]), f"{key} differs between the ranks"
    # Rank 0 wrote one checkpoint, reached by resuming at epoch 1.
    ckpt = torch.load(out / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    torch.testing.assert_close(ckpt["model"]["memory.items"], saved[0]["state"]["memory.items"], rtol=0, atol=0)

    det = memad.build("mnad_pred", **{**CONFIG, "train": {**CONFIG["train"], "batch_size": WORLD * PER_RANK_BATCH}})
    det.fit(_still_video(), epochs=2)
    single = det.state_dict()
    torch.testing.assert_close(saved[0]["state"]["memory.items"], single["memory.items"], rtol=0, atol=1e-5)
    for key in single:
        if key.endswith("running_var") or key.endswith("num_batches_tracked"):
            continue  # the unbiased running variance counts a rank's elements, not the global batch's
        # Conv biases in front of BatchNorm get (numerically) zero gradients, which Adam turns into steps
        # of up to lr in either direction: they may differ by 2 x lr x steps (measured: 4e-4), and the
        # running means that follow them by a tenth of that. All else agrees closely (measured: 3e-7).
        atol = 2 * CONFIG_LR * 4 if key.endswith(("bias", "running_mean")) else 1e-5
        torch.testing.assert_close(saved[0]["state"][key], single[key], rtol=0, atol=atol, msg=key)
    for got, want in zip(saved[0]["history"], det.history_):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)



def test_sharded_evaluation_equals_one_process(ranks):
    saved, out = ranks
    det = memad.load(out / "run" / "checkpoint.pt")
    det.config["test"]["reset"] = "video"
    single = score_videos(det, _test_videos())
    for reset in ("video", "never"):
        scores, frame, psnr, distance = saved[0][f"scores/{reset}"]
        other = saved[1][f"scores/{reset}"]
        np.testing.assert_array_equal(frame, single.frame)
        np.testing.assert_array_equal(scores, other[0])  # every rank returns the same gathered scores
        np.testing.assert_allclose(psnr, single.stats.psnr, rtol=0, atol=1e-4)
        np.testing.assert_allclose(distance, single.stats.distance, rtol=0, atol=1e-6)
        np.testing.assert_allclose(scores, single.scores, rtol=0, atol=1e-5)
    assert saved[0]["warned/video"] == [] and len(saved[0]["warned/never"]) == 1
    assert saved[1]["warned/never"] == []  # only rank 0 warns


def test_shard_is_distributed_sampler_and_covers_the_global_batch():
    from torch.utils.data import DistributedSampler

    for n in (7, 8, 13):
        order = _epoch_order(n, seed=3, epoch=1)
        shards = [distributed.shard(order, rank=r, world=3) for r in range(3)]
        sampler = [list(DistributedSampler(range(n), num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
        for r in range(3):
            assert shards[r].tolist() == [order[i].item() for i in sampler[r]]
        b = 2
        for step in range(len(shards[0]) // b):
            union = sorted(torch.cat([s[step * b:(step + 1) * b] for s in shards]).tolist())
            padded = torch.cat([order, order])[: len(shards[0]) * 3]
            assert union == sorted(padded[step * b * 3:(step + 1) * b * 3].tolist())


def test_split_videos_balances_frames_and_uses_every_video_once():
    lengths = [120, 180, 150, 60, 90, 30, 200]
    parts = distributed.split_videos(lengths, world=3)
    assert sorted(i for p in parts for i in p) == list(range(len(lengths)))
    loads = [sum(lengths[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(lengths)


def test_torchrun_environment_is_detected(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    x = torch.arange(6.0).reshape(3, 2)
    assert not distributed.launched() and distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.all_gather_cat(x) is x and distributed.broadcast(x) is x and distributed.all_reduce_mean(x) is x
    assert torch.equal(distributed.shard(x[:, 0]), x[:, 0])
    assert distributed.setup("cpu") == torch.device("cpu") and not dist.is_initialized()
    monkeypatch.setenv("RANK", "3")
    assert not distributed.launched()  # one variable is not torchrun
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert distributed.launched() and distributed.rank() == 3 and distributed.world_size() == 4
    assert not distributed.is_main() and distributed.local_rank() == 1


def test_rank_device_follows_local_rank(monkeypatch):
    for name, value in zip(distributed.TORCHRUN_VARIABLES, ("1", "1", "2", "127.0.0.1", "29500")):
        monkeypatch.setenv(name, value)
    assert distributed.rank_device("cpu") == torch.device("cpu")
    with pytest.raises(memad.ConfigError, match="train.device='mps'"):
        distributed.rank_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.rank_device("auto") == torch.device("cuda", 1)
    assert distributed.rank_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(memad.ConfigError, match="LOCAL_RANK"):
        distributed.rank_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(memad.ConfigError, match="nproc_per_node"):
        distributed.rank_device("auto")


def test_sync_batchnorm_swap_shares_state_and_restores():
    det = memad.build("mnad_pred", **CONFIG).network.train()  # the nn.Module the training loop wraps
    before = {name: type(m) for name, m in det.named_modules()}
    originals = [m for m in det.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x = torch.randn(2, 4, 32, 32)
    expected = copy.deepcopy(det)(x).output  # plain BatchNorm, on a copy
    restore = distributed._use_sync_batchnorm(det)
    swapped = [m for m in det.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert len(swapped) == len(originals) and not any(type(m) is torch.nn.BatchNorm2d for m in det.modules())
    assert all(s.weight is o.weight and s.running_mean is o.running_mean for s, o in zip(swapped, originals))
    # Outside a process group SyncBatchNorm is plain BatchNorm: same output, and the running
    # statistics it updates are the original modules' tensors.
    torch.testing.assert_close(det(x).output, expected)
    assert all(int(o.num_batches_tracked) == 1 for o in originals if o.training and o.track_running_stats
               and o.weight.requires_grad)
    restore()
    assert {name: type(m) for name, m in det.named_modules()} == before
    assert [m for m in det.modules() if isinstance(m, torch.nn.BatchNorm2d)] == originals


def test_sync_bn_on_cpu_is_refused_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    with pytest.raises(memad.ConfigError, match="train.sync_bn"):
        distributed.wrap(torch.nn.BatchNorm2d(2), torch.device("cpu"), sync_bn=True)


def test_torchrun_cli_trains_once_and_reports_once(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--master_port",
           str(_free_port()), "-m", "memad", "train", "mnad_recon", "--data", "synthetic", "--out", str(tmp_path),
           "--device", "cpu", "--eval", "--json", "--set", "data.image_size=32", "--set", "data.channels=1",
           "--set", "encoder.widths=[8,16,32,64]", "--set", "train.epochs=1", "--set", "train.progress=false",
           "--set", "train.max_steps_per_epoch=2", "--set", "test.reset=video", "--set", "test.mode=batched"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout)  # one JSON document: only rank 0 printed
    assert metrics["frames"] == 8 * 60 and 0.0 <= metrics["frame_auroc"] <= 1.0
    assert done.stderr.count("memad: training") == 1 and "2 processes" in done.stderr
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
