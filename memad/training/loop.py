"""Training: Adam with cosine annealing over the epochs, as the official MNAD code.

Each step minimises the sum of the loss terms the network declares (the task's
reconstruction loss plus each component's own, see :meth:`Network.loss_terms`). Each epoch's
record also says how many memory items the training reads used (:mod:`memad.training.health`). Memories
written outside autograd get each step's queries gathered from every process, and their
state is then copied from rank 0 everywhere (:func:`write_memory`): one mechanism for every
memory. Each epoch ends with an atomic checkpoint in ``out`` holding config, weights,
memory items, optimiser and scheduler state; a rerun resumes from it, and refuses a folder
whose run has another shape (another frame size, channels, model...).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from .. import distributed, runtime
from ..checkpoint import read_checkpoint, save_checkpoint
from ..config import image_hw, to_yaml, validate
from ..data import VideoSet, open_split
from ..data.clips import ClipBatches, holdout_videos
from ..errors import DataError, NumericalError
from ..fileio import write_json_atomic, write_text_atomic
from ..frames import to_float
from ..interfaces import Memory
from ..network import Network
from ..network.parts import component_sources
from .health import MemoryHealth

CHECKPOINT_NAME = "checkpoint.pt"
#: Config fields that change the shape of the network's parameters or of its input: a run folder
#: trained with other values cannot be resumed (nor a checkpoint scored) under these.
SHAPE_FIELDS = (("task",), ("data", "image_size"), ("data", "channels"), ("data", "frames"), ("data", "input"),
                ("encoder",), ("memory",), ("decoder",))

__all__ = ["train", "check_frames", "write_memory", "TrainResult", "CHECKPOINT_NAME", "SHAPE_FIELDS",
           "shape_difference"]


@dataclass
class TrainResult:
    """What a training run produced besides the weights: the per-epoch records (``history``, those of a
    resumed run's earlier epochs included), the videos kept out of training, and a summary."""

    history: list[dict[str, float]] = field(default_factory=list)
    holdout_videos: list[str] = field(default_factory=list)
    #: ``{name: VideoSet.fingerprint}`` of the held-out videos: a calibration takes them only from the same data.
    holdout_fingerprints: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def check_frames(network: Network, videos: VideoSet) -> None:
    """Refuse frames whose channels or size differ from the config's (folders are converted on load;
    a VideoSet or tensor given directly is not)."""
    want = network.config["data"]["channels"]
    if videos.channels != want:
        raise DataError(f"{videos.source}: frames have {videos.channels} channels, the config expects "
                        f"data.channels={want}")
    hw = tuple(videos.frames.shape[2:])
    if hw != image_hw(network.config):
        raise DataError(f"{videos.source}: frames are {hw[0]}x{hw[1]} (height x width), the config expects "
                        f"data.image_size={list(image_hw(network.config))}")


def shape_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first of :data:`SHAPE_FIELDS` on which configs ``a`` and ``b`` differ, as ``field: a vs b``."""
    for path in SHAPE_FIELDS:
        va, vb = a, b
        for key in path:
            va, vb = (va or {}).get(key), (vb or {}).get(key)
        if va != vb:
            return f"{'.'.join(path)}: {va!r} there, {vb!r} here"
    return None


@torch.no_grad()
def write_memory(memory: Memory, query: Any) -> None:
    """A training step's memory write, the same on every process.

    The queries of all ranks are gathered (the global batch) and written on every rank; the
    memory's buffers are then copied from rank 0, so that kernels that sum in a different
    order on each GPU cannot make the ranks' memories drift apart.
    """
    if not memory.writes or query is None:
        return
    memory.write(distributed.all_gather_tree(query))
    distributed.broadcast_buffers(memory)


def make_optimizer(network: Network, train_cfg: dict[str, Any], epochs: int):
    params = [p for p in network.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"])
    if train_cfg["scheduler"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def train(network: Network, data: Any, *, epochs: int | None = None, out: str | Path | None = None,
          resume: bool = True, log: Callable[[dict[str, Any]], None] | None = None,
          history: list[dict[str, float]] | None = None, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train ``network`` on the training split of ``data``; ``history`` are earlier epochs' records.

    ``callbacks`` are objects with an ``on_step(record)`` and/or ``on_epoch(record)`` method, called on
    rank 0: the step record holds ``epoch``, ``step`` (counted over epochs from 1), ``loss`` and each loss
    term of that step (this process's batch), ``lr``, ``clips`` and ``seconds`` since training started;
    the epoch record is the one ``log`` gets and the history keeps. Step records cost a host sync per
    step, so they are only made when a callback has ``on_step``.
    """
    cfg = network.config
    tcfg = cfg["train"]
    epochs = tcfg["epochs"] if epochs is None else int(epochs)
    tcfg["epochs"] = epochs
    device = distributed.setup(tcfg["device"])  # under torchrun: joins the process group, cuda:LOCAL_RANK
    videos = open_split(data, "training", cfg)
    check_frames(network, videos)
    # Whole normal videos kept out of training, for a calibration on footage the model never saw.
    held = holdout_videos(len(videos.lengths), tcfg["holdout"])
    result = TrainResult(list(history or []), [videos.names[i] for i in held],
                         {videos.names[i]: videos.fingerprint(i) for i in held})
    batches = ClipBatches(videos, network.clip_length, tcfg["batch_size"], seed=tcfg["seed"], device=device,
                          max_steps=tcfg["max_steps_per_epoch"], workers=cfg["data"]["workers"],
                          only=[i for i in range(len(videos.lengths)) if i not in held])
    steps = batches.steps

    channels_last = runtime.prepare_model(network, tcfg, device, compiled=(network.encoder, network.decoder))
    opt, sched = make_optimizer(network, tcfg, epochs)
    start_epoch = 0
    ckpt_path = Path(out) / CHECKPOINT_NAME if out is not None else None
    if ckpt_path is not None:
        if resume and ckpt_path.is_file():  # every rank reads it; DDP then starts from rank 0's copy
            start_epoch, result.history = _resume(network, opt, sched, ckpt_path, device)
        if distributed.is_main():
            write_text_atomic(ckpt_path.parent / "config.yaml", to_yaml(cfg))
            # Half-written saves of a run that was killed (atomic_write's temporary files).
            for stale in ckpt_path.parent.glob(f".{CHECKPOINT_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)
    model, unwrap = distributed.wrap(network, device, sync_bn=tcfg["sync_bn"])  # DDP under torchrun

    amp = runtime.amp_enabled(tcfg, device)
    health = MemoryHealth(network)  # per-epoch item usage, counted from each step's memory read
    main = distributed.is_main()
    on_step = [c.on_step for c in callbacks if hasattr(c, "on_step")] if main else []
    on_epoch = [c.on_epoch for c in callbacks if hasattr(c, "on_epoch")] if main else []
    t0 = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        network.train()
        totals: dict[str, torch.Tensor] = {}
        bar = tqdm(batches.epoch(epoch), total=steps, desc=f"{cfg['name']} epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not tcfg["progress"] or not distributed.is_main(), dynamic_ncols=True)
        for step, clips in enumerate(bar):
            x, y = network.split_clip(to_float(clips))
            with runtime.autocast(device, amp):
                out_ = model(runtime.to_model_layout(x, channels_last))
                terms = network.loss_terms(out_, y)
                loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            write_memory(network.memory, out_.memory.query)
            for name, value in {"loss": loss, **terms}.items():
                totals[name] = totals.get(name, 0) + value.detach().float()
            if on_step:
                values = torch.stack([v.detach().float() for v in (loss, *terms.values())]).tolist()
                step_record = {"epoch": epoch + 1, "step": epoch * steps + step + 1,
                               **dict(zip(["loss", *terms], values)), "lr": opt.param_groups[0]["lr"],
                               "clips": int(x.shape[0]), "seconds": time.perf_counter() - t0}
                for hook in on_step:
                    hook(step_record)
            # Reading values back costs a host sync: only every 25 steps, when the bar is refreshed.
            if step % 25 == 24 or step == steps - 1:
                names = list(totals)
                shown = distributed.all_reduce_mean(torch.stack([totals[k] for k in names]))
                _check_finite(dict(zip(names, shown.tolist())), cfg["name"], epoch, step)  # all ranks stop together
                bar.set_postfix(loss=f"{shown[0].item() / (step + 1):.4f}")
        sched.step()
        distributed.sync_buffers(network)  # BatchNorm running statistics: the mean over the ranks
        names = list(totals)
        mean = (distributed.all_reduce_mean(torch.stack([totals[k] for k in names])) / steps).tolist()
        record = {"epoch": epoch + 1, **dict(zip(names, mean)), **health.epoch(epoch + 1),
                  "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        result.history.append(record)
        if log is not None and distributed.is_main():
            log(record)
        for hook in on_epoch:
            hook(record)
        if ckpt_path is not None and distributed.is_main():
            save_checkpoint(ckpt_path, cfg, network.state_dict(), history=result.history,
                            holdout_videos=result.holdout_videos,
                            holdout_fingerprints=result.holdout_fingerprints, components=component_sources(cfg),
                            optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=epoch + 1)
    health.close()
    unwrap()
    network.eval()
    seconds = time.perf_counter() - t0
    if ckpt_path is not None and distributed.is_main():
        write_json_atomic(ckpt_path.parent / "history.json", result.history)
    distributed.barrier()  # the other ranks return once rank 0's files are written
    batches.close()
    result.summary = {"epochs": epochs, "seconds": seconds, "steps_per_epoch": steps, "device": str(device),
                      "processes": distributed.world_size(), "trained_videos": len(videos.lengths) - len(held),
                      "holdout_videos": list(result.holdout_videos)}
    return result


def _check_finite(values: dict[str, float], name: str, epoch: int, step: int) -> None:
    for label, v in values.items():
        if not math.isfinite(v):
            what = "total loss" if label == "loss" else f"{label} loss"
            raise NumericalError(f"{name}: {what} became {v} in epoch {epoch + 1} by step {step + 1}; "
                                 f"try a lower train.lr or check the input frames")


def _resume(network: Network, opt, sched, path: Path, device: torch.device) -> tuple[int, list[dict[str, float]]]:
    data = read_checkpoint(path)
    diff = shape_difference(validate(data["config"]), network.config)
    if diff is not None:
        raise DataError(f"{path}: holds a run of another shape ({diff}); use another --out, or start over with "
                        f"--no-resume (train(..., resume=False)), which replaces it")
    network.load_state_dict(data["model"])
    network.to(device)
    if "optimizer" in data:
        opt.load_state_dict(data["optimizer"])
    if "scheduler" in data:
        sched.load_state_dict(data["scheduler"])
    return int(data.get("epoch", 0)), list(data.get("history") or [])
