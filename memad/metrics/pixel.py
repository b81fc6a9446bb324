"""Pixel AUROC: exact from maps held in memory (:func:`pixel_auroc`), or streamed in bounded memory
from batch after batch of maps (:class:`PixelAUROC`: two fixed-size histograms over an asinh scale of
the scores, whose range doubles, by merging neighbouring bins, whenever a score falls outside it).

The streamed AUROC differs from the exact one only through pairs of a positive and a negative pixel
that share a bin (each counted as a tie); :meth:`PixelAUROC.error_bound` returns that bound.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..errors import ConfigError, DataError, NumericalError

__all__ = ["pixel_auroc", "PixelAUROC"]


def pixel_auroc(maps: Tensor | None, masks: Tensor | None) -> float | None:
    """AUROC of per-pixel errors against the masks (None without masks or with one class)."""
    if maps is None or masks is None:
        return None
    y = masks.reshape(-1).numpy().astype(np.int8)
    if y.min() == y.max():
        return None
    s = maps.reshape(-1).float().numpy()
    return float(roc_auc_score(y, s))


class PixelAUROC:
    """The pixel AUROC of maps fed batch by batch, in memory fixed by ``bins``.

    Anomalous (mask) and normal pixels are counted in two histograms of ``bins`` equal-width bins
    over ``z = asinh((score - center) / scale)``: linear near ``center``, logarithmic far from it, so a
    few huge errors do not swallow the resolution of the typical ones. ``center`` and ``scale`` are
    the median and the interquartile range (or, if that is 0, the range) of the first batch whose
    scores are not all equal, unless given. The z-range is that batch's; a later score outside it
    doubles the range's width, downwards or upwards, merging each pair of neighbouring bins, so the
    counts stay exact and no score is ever clipped (one pass; the bin width is at most twice the
    z-span of the scores seen divided by ``bins - 1``).

    :meth:`compute` is the AUROC of the binned scores, a shared bin counting as a tie (the trapezoidal
    rule on the binned ROC curve). As ``z`` is increasing, pixels in different bins are ordered as
    their scores are, so it is within :meth:`error_bound` of the exact AUROC (sklearn's
    ``roc_auc_score``): half the fraction of (anomalous, normal) pixel pairs that share a bin.

    Args:
        bins: histogram bins (even, at least 16); memory is two int64 counts per bin.
        center: optional fixed centre of the z-scale.
        scale: optional fixed scale (> 0) of the z-scale.

    >>> acc = PixelAUROC(bins=1024)
    >>> acc.update(torch.tensor([[0.1, 0.9], [0.2, 0.8]]), torch.tensor([[False, True], [False, True]]))
    >>> acc.compute(), acc.error_bound()
    (1.0, 0.0)
    """

    def __init__(self, bins: int = 65536, center: float | None = None, scale: float | None = None):
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 16 or bins % 2:
            raise ConfigError(f"PixelAUROC: bins must be an even integer >= 16, got {bins!r}")
        if center is not None and not np.isfinite(center):
            raise ConfigError(f"PixelAUROC: center must be a finite number, got {center!r}")
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise ConfigError(f"PixelAUROC: scale must be a finite number > 0, got {scale!r}")
        self.bins = bins
        self.center, self.scale = center, scale
        self._lo: float | None = None  # the z-range: [lo, lo + bins * width)
        self._width: float | None = None
        self._pos: Tensor | None = None
        self._neg: Tensor | None = None
        self._const: list[float] | None = None  # [score, anomalous, normal] while all scores seen are equal

    @property
    def positives(self) -> int:
        """Anomalous pixels counted."""
        return int(self._counts()[0].sum())

    @property
    def negatives(self) -> int:
        """Normal pixels counted."""
        return int(self._counts()[1].sum())

    def update(self, maps: Tensor | np.ndarray, masks: Tensor | np.ndarray) -> None:
        """Count a batch: ``maps`` of scores and ``masks`` (True: anomalous pixel) of the same shape."""
        maps, masks = torch.as_tensor(maps), torch.as_tensor(masks)
        if maps.shape != masks.shape:
            raise DataError(f"PixelAUROC.update: maps {tuple(maps.shape)} and masks {tuple(masks.shape)} differ; "
                            "expected one mask pixel per map pixel")
        if self._pos is not None:
            maps, masks = maps.to(self._pos.device), masks.to(self._pos.device)
        x, y = maps.detach().reshape(-1).double(), masks.reshape(-1).bool()
        if x.numel() == 0:
            return
        bad = ~torch.isfinite(x)
        if bad.any():
            raise NumericalError(f"PixelAUROC.update: {int(bad.sum())} map values are NaN or infinite; "
                                 "the pixel AUROC would be meaningless")
        low, high = float(x.min()), float(x.max())
        if self._lo is None:
            if low == high and (self._const is None or self._const[0] == low):
                n_pos, seen = int(y.sum()), self._const or [low, 0, 0]
                self._const = [low, seen[1] + n_pos, seen[2] + y.numel() - n_pos]
                return
            self._start(x, low, high)
        self._cover(self._z(low), self._z(high))
        if self._const is not None:  # the equal scores seen before the z-scale was known
            value, n_pos, n_neg = self._const
            self._const = None
            i = self._index(self._z(torch.tensor([value], dtype=torch.float64, device=x.device)))
            self._pos[i] += int(n_pos)
            self._neg[i] += int(n_neg)
        idx = self._index(self._z(x))
        self._pos += torch.bincount(idx[y], minlength=self.bins)
        self._neg += torch.bincount(idx[~y], minlength=self.bins)

    def _start(self, x: Tensor, low: float, high: float) -> None:
        """The z-scale and z-range from the first batch with distinct scores."""
        sample = x[::max(1, x.numel() // (1 << 20))].cpu().numpy()
        if self.center is None:
            self.center = float(np.median(sample))
        if self.scale is None:
            q25, q75 = np.quantile(sample, [0.25, 0.75])
            self.scale = float(q75 - q25) if q75 > q25 else high - low
        if self._const is not None:
            low, high = min(low, self._const[0]), max(high, self._const[0])
        z_low, z_high = self._z(low), self._z(high)
        self._lo, self._width = z_low, (z_high - z_low) / (self.bins - 1)
        self._pos = torch.zeros(self.bins, dtype=torch.int64, device=x.device)
        self._neg = torch.zeros(self.bins, dtype=torch.int64, device=x.device)

    def _z(self, x):
        if isinstance(x, Tensor):
            return torch.asinh((x - self.center) / self.scale)
        return float(np.arcsinh((x - self.center) / self.scale))

    def _index(self, z: Tensor) -> Tensor:
        return torch.floor((z - self._lo) / self._width).clamp_(0, self.bins - 1).long()

    def _cover(self, low: float, high: float) -> None:
        """Double the z-range (merging bin pairs) until it holds ``[low, high]``."""
        half = self.bins // 2
        while low < self._lo or high >= self._lo + self.bins * self._width:
            down = low < self._lo
            for h in (self._pos, self._neg):
                merged = h.view(half, 2).sum(1)
                h.zero_()
                (h[half:] if down else h[:half]).copy_(merged)
            if down:
                self._lo -= self.bins * self._width
            self._width *= 2

    def _counts(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pos is not None:
            return self._pos.cpu().numpy().astype(np.float64), self._neg.cpu().numpy().astype(np.float64)
        if self._const is not None:
            return np.array([self._const[1]], dtype=np.float64), np.array([self._const[2]], dtype=np.float64)
        return np.zeros(1), np.zeros(1)

    def compute(self) -> float | None:
        """The AUROC of the pixels counted so far (None without both anomalous and normal pixels)."""
        p, n = self._counts()
        total = p.sum() * n.sum()
        if total == 0:
            return None
        below = np.cumsum(n) - n
        return float((p * (below + 0.5 * n)).sum() / total)

    def error_bound(self) -> float | None:
        """The most :meth:`compute` can differ from the exact AUROC: half the fraction of
        (anomalous, normal) pixel pairs sharing a bin (None without both kinds of pixel)."""
        p, n = self._counts()
        total = p.sum() * n.sum()
        return float(0.5 * (p * n).sum() / total) if total else None
