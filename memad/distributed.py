"""Training and evaluation on several processes (GPUs, machines) with ``torchrun``.

memad uses PyTorch's own engine: ``torch.distributed`` for the process group and
:class:`~torch.nn.parallel.DistributedDataParallel` (DDP) for the gradients. Launched by
``torchrun`` (which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``), :func:`setup` joins the group (NCCL on CUDA, gloo on CPU) and gives each
process the device ``cuda:LOCAL_RANK``. Without those variables every helper here is a
no-op and memad runs in one process as before.

What is synchronised how (see ``docs/distributed.md``):

- gradients: DDP all-reduces them (a mean over the ranks) during ``backward``;
- memory state written outside autograd (prototype items...), for every memory alike:
  the training loop gathers each step's queries from all ranks (:func:`all_gather_tree`),
  the memory writes that global set on every rank, then its buffers are copied from
  rank 0 (:func:`broadcast_buffers`) so that they are bitwise identical everywhere;
- BatchNorm: batch statistics per rank, or across ranks with ``train.sync_bn`` (GPU
  only); the running statistics are averaged over the ranks at the end of each epoch
  (:func:`sync_buffers`), every other buffer is copied from rank 0;
- the epoch's clip order: derived from seed and epoch on every rank, then each rank
  takes every ``world_size``-th clip (:func:`shard`, as ``DistributedSampler``).

>>> shard(torch.arange(5), rank=1, world=2).tolist()  # padded to 6 by wrapping around
[1, 3, 0]
"""

from __future__ import annotations

import atexit
import inspect
import os
import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import ConfigError
from .runtime import pick_device

#: The environment variables ``torchrun`` sets for every process it starts.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

_owned_group = False  # True when setup() created the process group (so teardown() ends it)


def launched() -> bool:
    """True when this process was started by ``torchrun`` (its variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0)) if launched() else 0


_current_rank = rank  # for functions whose ``rank`` argument hides it


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1)) if launched() else 1


def local_rank() -> int:
    """This process's rank on its machine, which picks its GPU."""
    return int(os.environ.get("LOCAL_RANK", 0)) if launched() else 0


def is_main() -> bool:
    """True on rank 0, the process that prints, logs and writes files."""
    return rank() == 0


def rank_device(name: str = "auto") -> torch.device:
    """The device of this rank for a ``train.device`` setting: ``cuda:LOCAL_RANK`` or ``cpu``."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    dev = torch.device("cuda" if name == "auto" else name)
    if dev.type != "cuda":
        raise ConfigError(f"train.device={name!r}: under torchrun memad runs on 'cuda' (one GPU per process) "
                          f"or 'cpu'")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r}: CUDA is not available on this machine; use train.device=cpu")
    lr = local_rank()
    if dev.index is not None and dev.index != lr:
        raise ConfigError(f"train.device={name!r}: under torchrun each process uses the GPU of its LOCAL_RANK "
                          f"(here cuda:{lr}); set train.device to auto or cuda")
    if lr >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK={lr} but this machine has {torch.cuda.device_count()} GPU(s): "
                          f"--nproc_per_node must not exceed the GPUs of a machine")
    return torch.device("cuda", lr)


def setup(device: str = "auto") -> torch.device:
    """Join the process group when launched by torchrun; return this process's device.

    NCCL is used on CUDA, gloo on CPU. Idempotent: later calls only return the device.
    Outside torchrun this is :func:`memad.runtime.pick_device`.
    """
    global _owned_group
    if not launched():
        return pick_device(device)
    if not dist.is_available():
        raise ConfigError("this process was started by torchrun, but this torch build has no torch.distributed")
    dev = rank_device(device)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)  # NCCL and the object collectives use the current device
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        _owned_group = True
        atexit.register(teardown)
    return dev


def teardown() -> None:
    """Leave the process group if :func:`setup` created it."""
    global _owned_group
    if _owned_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _owned_group = False


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


# -- data ---------------------------------------------------------------------------------------
def shard_length(n: int, world: int | None = None) -> int:
    """Items per rank when ``n`` items are sharded (padded to a multiple of the ranks)."""
    world = world_size() if world is None else world
    return -(-n // world)


def shard(order: Tensor, rank: int | None = None, world: int | None = None) -> Tensor:
    """This rank's share of ``order``: every ``world``-th item from ``rank`` on.

    As ``DistributedSampler`` (without its own shuffling): the order is first padded by
    wrapping around to a multiple of ``world``, so all ranks get the same number of items
    and run the same number of steps. Step ``s`` of batch ``b`` on every rank then covers,
    over all ranks, exactly ``order[s*b*world:(s+1)*b*world]``: the batch a single process
    with ``batch_size = b * world`` draws at that step.
    """
    world = world_size() if world is None else world
    rank = _current_rank() if rank is None else rank
    if world == 1:
        return order
    total = shard_length(len(order), world) * world
    if total > len(order):
        reps = -(-total // len(order))
        order = torch.cat([order] * reps)[:total]
    return order[rank:total:world]


def split_videos(lengths: list[int] | np.ndarray, world: int | None = None) -> list[list[int]]:
    """Video indices per rank, balanced by frames (longest first to the least loaded rank).

    >>> split_videos([10, 50, 20, 30], world=2)
    [[1, 0], [3, 2]]
    """
    world = world_size() if world is None else world
    load = [0] * world
    out: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i)):
        r = min(range(world), key=lambda r: (load[r], r))
        out[r].append(i)
        load[r] += int(lengths[i])
    return out


# -- collectives --------------------------------------------------------------------------------
def all_gather_cat(x: Tensor) -> Tensor:
    """The tensors of all ranks concatenated along dim 0, in rank order (``x`` in one process).

    Every rank must pass the same shape (memad's training loop gives every rank the same
    batch size). The result carries no gradient.
    """
    if not is_distributed():
        return x
    x = x.contiguous()  # collectives want the default layout (channels-last queries are not)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts)


def all_gather_tree(x: Any) -> Any:
    """:func:`all_gather_cat` of a tensor, or of each tensor in a list/tuple (multi-level queries)."""
    if isinstance(x, (list, tuple)):
        return type(x)(all_gather_tree(v) for v in x)
    return all_gather_cat(x) if isinstance(x, Tensor) else x


@torch.no_grad()
def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy every buffer of ``module`` from rank ``src`` (in place; a no-op in one process)."""
    if not is_distributed():
        return
    for buf in module.buffers():
        if buf.is_contiguous():
            dist.broadcast(buf, src)
        else:  # collectives want the default layout
            tmp = buf.contiguous()
            dist.broadcast(tmp, src)
            buf.copy_(tmp)


def broadcast(x: Tensor, src: int = 0) -> Tensor:
    """Rank ``src``'s ``x`` on every rank (a new tensor; ``x`` itself in one process)."""
    if not is_distributed():
        return x
    out = x.detach().clone().contiguous()
    dist.broadcast(out, src)
    return out


def all_reduce_mean(x: Tensor) -> Tensor:
    """The mean of ``x`` over the ranks (a new tensor; ``x`` itself in one process)."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return out / dist.get_world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (picklable objects, e.g. CPU tensors and arrays)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# -- models -------------------------------------------------------------------------------------
def _is_batchnorm(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)


def _use_sync_batchnorm(module: nn.Module) -> Callable[[], None]:
    # Swap each BatchNorm for a SyncBatchNorm sharing its parameters and running-statistic
    # tensors (updates reach the original), and return a function that puts the originals back.
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not _is_batchnorm(child):
                continue
            sync = nn.SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            if child.affine:
                sync.weight, sync.bias = child.weight, child.bias
            if child.track_running_stats:
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
            sync.train(child.training)
            setattr(parent, name, sync)
            swapped.append((parent, name, child))

    def restore() -> None:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)

    return restore


def wrap(detector: nn.Module, device: torch.device, sync_bn: bool = False) -> tuple[nn.Module, Callable[[], None]]:
    """``detector`` in DDP (itself in one process), and a function to call after training.

    No buffer sync before each forward pass (``forward_sync_buffers=False``, formerly
    ``broadcast_buffers=False``): DDP would copy rank 0's buffers (memory items, BatchNorm
    running statistics) to every rank before each forward pass. The memory's buffers need no
    copy: the training loop keeps them identical after each write (:func:`broadcast_buffers`).
    The running statistics are averaged at the end of each epoch instead (:func:`sync_buffers`), which is one
    collective per epoch rather than per step, and uses every rank's batches.
    With ``sync_bn``, BatchNorm normalises with the statistics of the global batch
    (``SyncBatchNorm``, GPU only in torch); the call after training restores the model's
    own BatchNorm modules.
    """
    def restore() -> None:
        return None

    if not is_distributed():
        return detector, restore
    if sync_bn:
        if device.type != "cuda":
            raise ConfigError(f"train.sync_bn=true: torch's SyncBatchNorm runs only on GPUs, this run is on {device}; "
                              f"set train.sync_bn=false (each process then normalises with its own batch)")
        restore = _use_sync_batchnorm(detector)
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.12 names the switch forward_sync_buffers (buffers are still copied from rank 0 at the start).
    no_forward_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                       else {"broadcast_buffers": False})
    model = ddp(detector, device_ids=[device.index] if device.type == "cuda" else None, **no_forward_sync)
    return model, restore


@torch.no_grad()
def sync_buffers(module: nn.Module) -> None:
    """Average BatchNorm running statistics over the ranks; copy every other buffer from rank 0."""
    if not is_distributed():
        return
    averaged: set[int] = set()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buf in (m.running_mean, m.running_var):
                buf.copy_(all_reduce_mean(buf))
                averaged.add(id(buf))
    for buf in module.buffers():
        if id(buf) not in averaged:
            dist.broadcast(buf, 0)


def effective_reset(reset: str, memory_writes: bool) -> str:
    """``test.reset`` to use when scoring: ``video`` whenever test videos are split over ranks.

    With ``never`` the memory a video starts from is what the previous videos left, so
    a video's scores depend on every video before it and the videos cannot be scored
    apart. A sharded evaluation therefore restores the trained memory at each video.
    """
    if reset == "never" and memory_writes and is_distributed():
        if is_main():
            warnings.warn(f"test.reset=never carries the memory from one test video to the next, which cannot be "
                          f"split over {world_size()} processes: this evaluation uses test.reset=video (each video "
                          f"starts from the trained memory). For test.reset=never run the evaluation in one "
                          f"process (memad eval without torchrun).", stacklevel=3)
        return "video"
    return reset


def gather_video_results(results: dict[str, Tensor], frame_idx: np.ndarray, seconds: float,
                         ) -> tuple[dict[str, Tensor], np.ndarray, float]:
    """Per-frame results of every rank's videos, in frame order; the slowest rank's seconds."""
    if not is_distributed():
        return results, frame_idx, seconds
    parts = [p for p in all_gather_objects((results, frame_idx, seconds))]
    seconds = max(p[2] for p in parts)
    filled = [p for p in parts if len(p[1])]
    if not filled:
        return results, frame_idx, seconds
    frame_idx = np.concatenate([p[1] for p in filled])
    order = torch.from_numpy(np.argsort(frame_idx, kind="stable"))
    merged = {k: torch.cat([p[0][k] for p in filled])[order] for k in filled[0][0]}
    return merged, frame_idx[order.numpy()], seconds


__all__ = [
    "launched", "is_distributed", "rank", "world_size", "local_rank", "is_main", "rank_device", "setup", "teardown",
    "barrier", "shard", "shard_length", "split_videos", "all_gather_cat", "all_gather_tree", "broadcast",
    "broadcast_buffers", "all_reduce_mean",
    "all_gather_objects", "wrap", "sync_buffers", "effective_reset", "gather_video_results",
]
