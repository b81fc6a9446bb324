"""MemAE's memory (Gong et al., ICCV 2019): items learned by gradient, a sparse
attention over them through hard shrinkage, and an entropy loss on that attention."""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memad import Memory, MemoryOutput
from memad.interfaces import LevelExplanation


def hard_shrink_relu(weights: Tensor, threshold: float, eps: float = 1e-12) -> Tensor:
    """``relu(w - t) * w / (|w - t| + eps)``: keeps weights above ``t`` (nearly unchanged), zeroes the rest.

    A continuous form of hard shrinkage through which gradients flow (MemAE eq. 7).

    >>> hard_shrink_relu(torch.tensor([0.5, 0.001]), 0.0025)
    tensor([0.5000, 0.0000])
    """
    return F.relu(weights - threshold) * weights / ((weights - threshold).abs() + eps)


def address(query: Tensor, items: Tensor, how: Literal["dot", "cosine"] = "dot") -> Tensor:
    """Addressing weights ``softmax(q p^T)`` of queries ``(K, D)`` over items ``(M, D)``, ``(K, M)``."""
    if how == "cosine":
        logits = F.normalize(query, dim=1) @ F.normalize(items, dim=1).t()
    else:
        logits = query @ items.t()
    return torch.softmax(logits, dim=1)


def sparse_address(query: Tensor, items: Tensor, threshold: float, how: Literal["dot", "cosine"] = "dot",
                   eps: float = 1e-12) -> Tensor:
    """MemAE's read weights: addressing, hard shrinkage, then L1 renormalisation per query."""
    weights = address(query, items, how)
    if threshold > 0:
        weights = F.normalize(hard_shrink_relu(weights, threshold, eps), p=1, dim=1)
    return weights


def attention_entropy(weights: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean over queries of ``-sum_i w_i log w_i`` (zero weights contribute nothing)."""
    return -(weights * torch.log(weights + eps)).sum(dim=1).mean()


#: (query, item) weights held at a time by :func:`sparse_read` on a CPU with one thread: a chunk's three
#: buffers (2 MiB each in fp32) stay in the cache through the softmax, the shrinkage and the read.
CPU_CHUNK_WEIGHTS = 2**19
#: The same with several threads, in all (at least CPU_CHUNK_WEIGHTS per thread): each chunk's dozen
#: operations are a dozen barriers where the threads wait for the slowest, on a loaded machine for one the
#: system has descheduled. Fewer, larger chunks: on 2 busy cores 2^21 ran at half the speed of 2^23.
CPU_THREADED_CHUNK_WEIGHTS = 2**23
#: The same on a GPU, where each chunk costs kernel launches: chunks only bound the temporaries' memory.
GPU_CHUNK_WEIGHTS = 2**26


@torch.no_grad()
def sparse_read(query: Tensor, items: Tensor, threshold: float, how: Literal["dot", "cosine"] = "dot",
                eps: float = 1e-12, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """``(w @ items, attention_entropy(w))`` for ``w = sparse_address(query, items, threshold, how)``,
    without autograd, about ``chunk`` queries at a time in reused buffers.

    The dense form holds every (query, item) pair in each of some ten temporaries (at 2,000
    items, 8 KB per query each); here a chunk's logits and weights stay in the cache. The read
    takes the dense form's operations on blocks of rows: hard shrinkage ``relu(w - t) w / (|w - t|
    + eps)`` is ``d w / (d + eps)`` with ``d = max(w - t, 0)``, the same wherever ``w > t`` and
    zero elsewhere; the L1 norm is ``vector_norm`` as in ``F.normalize``. It can differ from the
    dense read only where a matrix product rounds a block of rows differently from the whole
    (the chunks are of equal sizes, never a remainder of a few rows). The entropy is computed
    without a logarithm per weight (``log w = z - max z + log max w`` for the softmax of logits
    ``z``, and ``log(d / (d + eps)) = -eps / (d + eps)`` to first order): equal to the dense
    one to rounding. ``chunk`` defaults to about :data:`CPU_CHUNK_WEIGHTS` weights
    (:data:`CPU_THREADED_CHUNK_WEIGHTS` with several threads, :data:`GPU_CHUNK_WEIGHTS` on a GPU).
    """
    n_query, n_items = query.shape[0], items.shape[0]
    if chunk is None:
        threads = torch.get_num_threads()
        budget = (GPU_CHUNK_WEIGHTS if query.device.type != "cpu" else CPU_CHUNK_WEIGHTS if threads == 1 else
                  max(CPU_THREADED_CHUNK_WEIGHTS, CPU_CHUNK_WEIGHTS * threads))
        chunk = max(1, budget // n_items)
    pieces = max(1, -(-n_query // chunk))
    bounds = [i * n_query // pieces for i in range(pieces + 1)]
    rows = max(b - a for a, b in zip(bounds, bounds[1:]))
    keys = F.normalize(items, dim=1) if how == "cosine" else items
    buffers = query.new_empty(3, rows, n_items)
    read = query.new_empty(n_query, items.shape[1])
    # Per query, for the entropy: max softmax weight, L1 norm of the shrunk weights, sum of w_i / (d_i + eps),
    # and sum of w_i (z_i - max z), w the read weights.
    w_max, total, cut, centred = query.new_empty(4, n_query)
    for start, stop in zip(bounds, bounds[1:]):
        z, w, u = buffers[:, :stop - start]
        torch.mm(F.normalize(query[start:stop], dim=1) if how == "cosine" else query[start:stop], keys.t(), out=z)
        torch.softmax(z, 1, out=w)
        torch.amax(w, 1, out=w_max[start:stop])  # = 1 / sum_i exp(z_i - max z)
        z.sub_(z.amax(1, keepdim=True))
        if threshold > 0:
            d = torch.sub(w, threshold, out=u).clamp_min_(0)
            w.mul_(d).div_(d.add_(eps))
            norm = torch.linalg.vector_norm(w, 1, dim=1, keepdim=True, out=total[start:stop, None])
            w.div_(norm.clamp_min(1e-12))  # F.normalize(p=1)
            torch.sum(u.reciprocal_().mul_(w), dim=1, out=cut[start:stop])
        torch.mm(w, items, out=read[start:stop])
        torch.sum(z.mul_(w), dim=1, out=centred[start:stop])
    # sum_i w_i log w_i, with log w_i = (z_i - max z) + log w_max + log(d_i / (d_i + eps)) - log norm and
    # log(d / (d + eps)) = -eps / (d + eps) to first order; the read weights sum to total / norm: 1, or 0.
    if threshold > 0:
        norm = total.clamp_min(1e-12)
        plogp = centred + (w_max.log() - norm.log()) * (total / norm) - eps * cut
    else:
        plogp = centred + w_max.log()
    return read, -plogp.mean()


class MemAEMemory(Memory):
    """MemAE's memory: a sparse (hard-shrunk) softmax over items learned by gradient, read per position.

    Each position's feature vector is replaced by ``w_hat @ items``. The items are an
    ``nn.Parameter`` trained with the rest of the network; nothing is written outside the
    gradient step. Features may be ``(B, C, h, w)`` or ``(B, C, t, h, w)`` (3D models):
    each position's C-vector is one query.

    Without a gradient to compute (scoring on a CPU) the read is :func:`sparse_read`, the same
    weights in chunks; training, a GPU, or ``fast_read = False`` on the module keep the dense form.

    Args:
        in_channels: feature dimension (the encoder's last width), filled in by memad.
        items: number of memory items N (2000 for MemAE's video model).
        shrink: hard-shrinkage threshold lambda (0.0025 in the official code; the paper
            suggests 1/N to 3/N); 0 disables shrinkage.
        entropy: weight of the entropy loss of the shrunk weights (0.0002).
        addressing: ``"dot"`` (the official code) or ``"cosine"`` (the paper's text).
    """

    #: Read with :func:`sparse_read` on a CPU when no gradient is needed (False: always the dense form).
    fast_read: bool = True

    def __init__(
        self,
        in_channels: int,
        items: int = 2000,
        shrink: float = 0.0025,
        entropy: float = 0.0002,
        addressing: Literal["dot", "cosine"] = "dot",
    ):
        super().__init__()
        if items < 1:
            raise ValueError(f"memory.items: expected at least 1, got {items}")
        if shrink < 0 or shrink >= 1:
            raise ValueError(f"memory.shrink: expected a threshold in [0, 1), got {shrink!r}")
        if entropy < 0:
            raise ValueError(f"memory.entropy: expected a weight >= 0, got {entropy!r}")
        if addressing not in ("dot", "cosine"):
            raise ValueError(f"memory.addressing: expected 'dot' or 'cosine', got {addressing!r}")
        self.dim = in_channels
        self.shrink = shrink
        self.entropy = entropy
        self.addressing = addressing
        bound = 1.0 / math.sqrt(in_channels)  # the official code's uniform initialisation
        self.items = nn.Parameter(torch.empty(items, in_channels).uniform_(-bound, bound))
        self._checked_dead = False

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features: Tensor) -> MemoryOutput:
        if features.dim() < 3 or features.shape[1] != self.dim:
            raise ValueError(f"MemAE memory: expected features (B, {self.dim}, ...spatial), "
                             f"got shape {tuple(features.shape)}")
        channels_last = features.float().movedim(1, -1)
        query = channels_last.reshape(-1, self.dim)
        if self._needs_graph(query):
            weights = sparse_address(query, self.items, self.shrink, self.addressing)
            read = weights @ self.items
            ent = attention_entropy(weights)
            if self.training and not self._checked_dead:
                self._warn_if_dead(weights)
        else:  # scoring: nothing to differentiate, the chunked in-place read
            read, ent = sparse_read(query, self.items, self.shrink, self.addressing)
        read = read.view(channels_last.shape).movedim(-1, 1)
        return MemoryOutput(
            read=read.to(features.dtype),
            loss=self.entropy * ent,
            distance=None,
            logs={"entropy": ent.detach()},
            query=None,
        )

    def _needs_graph(self, query: Tensor) -> bool:
        """Whether the read must be the dense form: a gradient may flow, a tracer or compiler records the
        graph (an export keeps the dense read's operators), ``fast_read`` is off, or the read is not on a
        CPU (where :func:`sparse_read`'s blocks of rows are checked to round as the whole does)."""
        if not self.fast_read or query.device.type != "cpu":
            return True
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return True
        return torch.is_grad_enabled() and (query.requires_grad or self.items.requires_grad)

    @torch.no_grad()
    def explain(self, features: Tensor) -> list[LevelExplanation]:
        """Each position's item of largest read weight (shrinkage keeps the addressing's order), the mean
        squared difference to it and the largest read weights; 2D ``(B, C, h, w)`` or 3D ``(B, C, t, h, w)``."""
        from memad.explanation import explain_nearest

        channels_last = features.float().movedim(1, -1)
        weights = address(channels_last.reshape(-1, self.dim), self.items, self.addressing)
        assignment = weights.argmax(1).view(channels_last.shape[:-1])
        if self.shrink > 0:  # the read's weights, as sparse_address makes them
            weights = F.normalize(hard_shrink_relu(weights, self.shrink), p=1, dim=1)
        return [explain_nearest(features, self.items, assignment, weights.view(*channels_last.shape[:-1], -1))]

    def _warn_if_dead(self, weights: Tensor) -> None:
        # Weights start near 1/N: with shrink above that, every weight can be cut, the read is
        # zero and no gradient reaches the items or the encoder. Checked once (it costs a sync).
        self._checked_dead = True
        if self.shrink > 0 and not bool((weights > 0).any()):
            n = self.items.shape[0]
            warnings.warn(f"MemAE memory: every addressing weight is below memory.shrink={self.shrink} (weights start "
                          f"near 1/items = {1 / n:.2g}), so the read is zero and nothing reaches the items or the "
                          f"encoder; lower memory.shrink or memory.items", RuntimeWarning, stacklevel=3)

    def extra_repr(self) -> str:
        return (f"items={self.items.shape[0]}, dim={self.dim}, shrink={self.shrink}, entropy={self.entropy}, "
                f"addressing={self.addressing!r}")
