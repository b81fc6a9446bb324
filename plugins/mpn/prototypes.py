"""MPN's dynamic prototype unit (Lv et al., CVPR 2021, "Learning Normal Dynamics in Videos with Meta
Prototype Network"): prototypes computed for each input from its own feature map, not stored.

For a sample's unit-norm features ``q_n`` (n over the h*w positions) and ``M`` attention heads
``W`` (a linear map, no bias): ``a_nm = softmax over n of (W q_n)_m``; prototype ``p_m = sum_n
a_nm q_n``, then normalised. Each position reads ``r_n = normalise(sum_m softmax_m(q_n . p_m) p_m)``
and the unit hands on ``r_n + q_n``. Losses, as the paper's code: the feature reconstruction
``mean((q_n - p_{nearest(n)})^2)`` (also each frame's anomaly signal, MNAD's D) and the
distinction ``sum_{i<j} max(0, 1 - |p_i - p_j|^2) * 2 / (M (M - 1))``, averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memad import LevelExplanation
from memad.explanation import explain_nearest

__all__ = ["DynamicPrototypes", "distinction_loss"]


def distinction_loss(protos: Tensor) -> Tensor:
    """``(B, M, D)`` unit-norm prototypes -> the mean over the batch of the mean positive part of
    ``1 - |p_i - p_j|^2`` over the pairs ``i < j`` (prototypes closer than sqrt(1) are pushed apart).

    >>> distinction_loss(torch.tensor([[[1., 0.], [1., 0.], [0., 1.]]]))  # one equal pair: 1; the others 1 - 2 < 0
    tensor(0.3333)
    """
    m = protos.shape[1]
    close = (1 - torch.cdist(protos, protos).pow(2)).clamp_min(0)
    return (torch.triu(close, diagonal=1).sum((1, 2)) * 2 / (m * (m - 1))).mean()


class DynamicPrototypes(nn.Module):
    """The dynamic prototype unit on feature maps ``(B, D, h, w)`` (see the module docstring).

    Args:
        dim: feature dimension D.
        prototypes: number of prototypes M (10 in the paper).
    """

    #: Input pixels per position of the features it reads, when known (MPN's decoder: 1, full resolution).
    cell: tuple[int, int] | None = None

    def __init__(self, dim: int, prototypes: int = 10):
        super().__init__()
        if prototypes < 2:
            raise ValueError(f"prototypes: expected at least 2 (the distinction loss compares pairs), got {prototypes}")
        self.dim, self.prototypes = dim, prototypes
        self.heads = nn.Linear(dim, prototypes, bias=False)

    def _prototypes(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unit-norm queries ``(B, n, D)``, each input's prototypes ``(B, M, D)`` and their similarities."""
        b, d, h, w = features.shape
        q = F.normalize(features.float(), dim=1).permute(0, 2, 3, 1).reshape(b, h * w, d)
        attention = torch.softmax(self.heads(q), dim=1)  # over the positions, per head
        protos = F.normalize(torch.einsum("bnm,bnd->bmd", attention, q), dim=-1)
        return q, protos, torch.einsum("bnd,bmd->bnm", q, protos)

    @torch.no_grad()
    def explain(self, features: Tensor) -> list[LevelExplanation]:
        """Per input: each position's nearest prototype (the feature loss's), the mean squared difference to
        it and the read weights; the items are that input's own prototypes (``per_input``)."""
        b, d, h, w = features.shape
        q, protos, score = self._prototypes(features)
        query = q.view(b, h, w, d).permute(0, 3, 1, 2)
        e = explain_nearest(query, protos, score.argmax(-1).view(b, h, w),
                            torch.softmax(score, dim=-1).view(b, h, w, -1), per_input=True)
        e.cell = self.cell
        return [e]

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """``read`` ``(B, D, h, w)``, ``protos`` ``(B, M, D)``, per-sample ``distance`` ``(B,)``,
        and the batch's ``feature_loss`` and ``distinction_loss``."""
        b, d, h, w = features.shape
        q, protos, score = self._prototypes(features)
        read = F.normalize(torch.einsum("bnm,bmd->bnd", torch.softmax(score, dim=-1), protos), dim=-1)
        nearest = protos.gather(1, score.argmax(-1, keepdim=True).expand(-1, -1, d))
        sq = (q - nearest).pow(2)
        out = (read + q).reshape(b, h, w, d).permute(0, 3, 1, 2)
        return {"read": out.to(features.dtype), "protos": protos, "distance": sq.mean((1, 2)),
                "feature_loss": sq.mean(), "distinction_loss": distinction_loss(protos)}
