"""Training: Adam with cosine annealing over the epochs, as the official MNAD code.

Frames stay uint8 in memory (on the GPU when training there) and become float batches
only when drawn. Each epoch ends with an atomic checkpoint in ``out`` holding config,
weights, memory items, optimiser and scheduler state; a rerun resumes from it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import atomic_save, read_checkpoint, save_checkpoint
from .config import to_yaml
from .data import VideoSet, gather_clips, open_split, to_float
from .errors import DataError, NumericalError

CHECKPOINT_NAME = "checkpoint.pt"


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(train_cfg: dict[str, Any], device: torch.device) -> bool:
    """Whether ``train.channels_last`` is on for ``device`` ("auto": CUDA only)."""
    setting = train_cfg.get("channels_last", False)
    return device.type == "cuda" if setting == "auto" else bool(setting)


def to_model_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d batch in the layout the model's weights use."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def prepare_model(detector, device: torch.device) -> bool:
    """Move ``detector`` to ``device`` and apply ``train.channels_last`` and ``train.compile``.

    Idempotent. Compiling uses ``nn.Module.compile`` on the encoder and decoder, which
    keeps the parameter names (checkpoints stay loadable without compile). Returns
    whether batches should be converted to channels-last.
    """
    tcfg = detector.config["train"]
    channels_last = uses_channels_last(tcfg, device)
    detector.to(device)
    if channels_last:
        detector.to(memory_format=torch.channels_last)
    mode = tcfg.get("compile", False)
    if mode:
        for part in (detector.encoder, detector.decoder):
            if getattr(part, "_compiled_call_impl", None) is None:
                part.compile(mode=None if mode is True else mode, dynamic=False)
    return channels_last


def check_channels(detector, videos: VideoSet) -> None:
    """Refuse frames whose channels or size differ from the config's (folders are converted on load;
    a VideoSet or tensor given directly is not)."""
    from .config import image_hw

    want = detector.config["data"]["channels"]
    if videos.channels != want:
        raise DataError(f"{videos.source}: frames have {videos.channels} channels, the config expects "
                        f"data.channels={want}")
    hw = tuple(videos.frames.shape[2:])
    if hw != image_hw(detector.config):
        raise DataError(f"{videos.source}: frames are {hw[0]}x{hw[1]} (height x width), the config expects "
                        f"data.image_size={list(image_hw(detector.config))}")


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    # One generator per epoch, derived from the seed: a resumed run draws the same order.
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def make_optimizer(detector, train_cfg: dict[str, Any], epochs: int):
    params = [p for p in detector.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"])
    if train_cfg["scheduler"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def train(detector, data: Any, *, epochs: int | None = None, out: str | Path | None = None,
          resume: bool = True, log=None) -> dict[str, Any]:
    """Train ``detector`` on the training split of ``data``; returns a summary."""
    cfg = detector.config
    tcfg = cfg["train"]
    epochs = tcfg["epochs"] if epochs is None else int(epochs)
    if epochs != tcfg["epochs"]:
        cfg["train"]["epochs"] = epochs
    device = distributed.setup(tcfg["device"])  # under torchrun: joins the process group, cuda:LOCAL_RANK
    videos = open_split(data, "training", cfg)
    check_channels(detector, videos)
    clip = detector.clip_length
    starts = torch.from_numpy(videos.clip_starts(clip))
    bs = tcfg["batch_size"]  # per process: a step under torchrun takes bs clips on each rank
    steps = distributed.shard_length(len(starts)) // bs  # drop_last, as the official loader
    if tcfg["max_steps_per_epoch"]:
        steps = min(steps, tcfg["max_steps_per_epoch"])
    if steps == 0:
        raise DataError(f"{videos.source}: {len(starts)} training clips are fewer than train.batch_size={bs}"
                        + (f" x {distributed.world_size()} processes" if distributed.world_size() > 1 else ""))

    channels_last = prepare_model(detector, device)
    frames = videos.frames.to(device)
    # Clip starts and the epoch order live on the device: indexing with host tensors would
    # copy them over, and a pageable host-to-device copy waits for the GPU at every step.
    starts = starts.to(device)
    opt, sched = make_optimizer(detector, tcfg, epochs)
    start_epoch = 0
    ckpt_path = Path(out) / CHECKPOINT_NAME if out is not None else None
    if ckpt_path is not None:
        if distributed.is_main():
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            (ckpt_path.parent / "config.yaml").write_text(to_yaml(cfg))
            # Half-written saves of a run that was killed (atomic_save's temporary files).
            for stale in ckpt_path.parent.glob(f".{CHECKPOINT_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)
        if resume and ckpt_path.is_file():  # every rank reads it; DDP then starts from rank 0's copy
            start_epoch = _resume(detector, opt, sched, ckpt_path, device)
    model, unwrap = distributed.wrap(detector, device, sync_bn=tcfg["sync_bn"])  # DDP under torchrun

    amp = tcfg["amp"]
    t0 = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        detector.train()
        order = distributed.shard(_epoch_order(len(starts), tcfg["seed"], epoch).to(device))
        totals = torch.zeros(3, device=device)  # loss, reconstruction, memory
        bar = tqdm(range(steps), desc=f"{cfg['name']} epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not tcfg["progress"] or not distributed.is_main(), dynamic_ncols=True)
        for step in bar:
            idx = starts[order[step * bs:(step + 1) * bs]]
            x, y = detector.split_clip(to_float(gather_clips(frames, idx, clip)))
            with autocast(device, amp):
                out_ = model(to_model_layout(x, channels_last), update=True)
                rec = F.mse_loss(out_.output.float(), y)
                loss = rec + out_.memory.loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals += torch.stack([loss.detach(), rec.detach(), out_.memory.loss.detach().float()])
            # Reading values back costs a host sync: only every 25 steps, when the bar is refreshed.
            if step % 25 == 24 or step == steps - 1:
                shown = distributed.all_reduce_mean(totals)  # the same on every rank: all stop together on a NaN
                _check_finite(shown, cfg["name"], epoch, step)
                bar.set_postfix(loss=f"{shown[0].item() / (step + 1):.4f}")
        sched.step()
        distributed.sync_buffers(detector)  # BatchNorm running statistics: the mean over the ranks
        mean = (distributed.all_reduce_mean(totals) / steps).tolist()
        record = {"epoch": epoch + 1, "loss": mean[0], "reconstruction": mean[1], "memory": mean[2],
                  "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        detector.history_.append(record)
        if log is not None and distributed.is_main():
            log(record)
        if ckpt_path is not None and distributed.is_main():
            save_checkpoint(ckpt_path, detector, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                            epoch=epoch + 1)
    unwrap()
    detector.eval()
    seconds = time.perf_counter() - t0
    if ckpt_path is not None and distributed.is_main():
        (ckpt_path.parent / "history.json").write_text(json.dumps(detector.history_, indent=1))
    distributed.barrier()  # the other ranks return once rank 0's files are written
    return {"epochs": epochs, "seconds": seconds, "steps_per_epoch": steps, "device": str(device),
            "processes": distributed.world_size()}


def _check_finite(totals: torch.Tensor, name: str, epoch: int, step: int) -> None:
    vals = totals.tolist()
    for label, v in zip(("total loss", "reconstruction loss", "memory loss"), vals):
        if not math.isfinite(v):
            raise NumericalError(f"{name}: {label} became {v} in epoch {epoch + 1} by step {step + 1}; "
                                 f"try a lower train.lr or check the input frames")


def _resume(detector, opt, sched, path: Path, device: torch.device) -> int:
    data = read_checkpoint(path)
    if data["config"]["encoder"] != detector.config["encoder"] or data["config"]["memory"] != detector.config[
            "memory"] or data["config"]["decoder"] != detector.config["decoder"]:
        raise DataError(f"{path}: holds a different model than this config; use another --out or delete it")
    detector.load_state_dict(data["model"])
    detector.to(device)
    if "optimizer" in data:
        opt.load_state_dict(data["optimizer"])
    if "scheduler" in data:
        sched.load_state_dict(data["scheduler"])
    detector.history_ = list(data.get("history") or [])
    return int(data.get("epoch", 0))


__all__ = ["train", "pick_device", "autocast", "prepare_model", "to_model_layout", "CHECKPOINT_NAME", "atomic_save"]
