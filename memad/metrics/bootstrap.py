"""A bootstrap confidence interval of the pooled frame AUROC over test videos: videos (not frames,
which are correlated within a video) are drawn with replacement, the AUROC of each draw's frames
pooled is computed, and the interval is the percentiles of those AUROCs."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ._inputs import frame_arrays, two_classes

__all__ = ["frame_auroc_ci95", "weighted_auroc"]


def _groups(scores: np.ndarray) -> tuple[np.ndarray, int]:
    values, group = np.unique(scores, return_inverse=True)
    return group.reshape(-1), len(values)


def _auroc(group: np.ndarray, n_groups: int, positive: np.ndarray, weight: np.ndarray) -> float:
    """Weighted AUROC from tie groups (ascending scores): ties count half."""
    p = np.bincount(group[positive], weights=weight[positive], minlength=n_groups)
    n = np.bincount(group[~positive], weights=weight[~positive], minlength=n_groups)
    total = p.sum() * n.sum()
    if total == 0:
        return float("nan")
    return float((p * (np.cumsum(n) - 0.5 * n)).sum() / total)


def weighted_auroc(scores: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> float:
    """The AUROC of frames counted ``weight`` times each (ties between an anomalous and a normal frame
    count half); NaN without both classes.

    >>> weighted_auroc(np.array([.1, .4, .35, .8]), np.array([0, 0, 1, 1]), np.array([1, 1, 2, 1]))
    0.6666666666666666
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    group, n_groups = _groups(scores)
    return _auroc(group, n_groups, labels, np.asarray(weight, dtype=np.float64))


def frame_auroc_ci95(scores: np.ndarray, labels: np.ndarray, video: np.ndarray, *, resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> list[float] | None:
    """``[low, high]``: the percentile bootstrap interval (95% by default) of the pooled frame AUROC.

    Each of ``resamples`` draws takes as many videos as there are, with replacement (a numpy
    ``default_rng(seed)``); a video drawn twice counts its frames twice. Draws with one class only
    are left out. The bounds are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's
    linear interpolation) of the draws' AUROCs. None without both classes, or with a single video.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ConfigError(f"resamples must be an integer >= 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be a fraction in (0, 1), got {level!r}")
    scores, labels, video = frame_arrays(scores, labels, video)
    videos, which = np.unique(video, return_inverse=True)
    which = which.reshape(-1)
    if not two_classes(labels) or len(videos) < 2:
        return None
    group, n_groups = _groups(scores)
    rng = np.random.default_rng(seed)
    aurocs = []
    for _ in range(resamples):
        copies = np.bincount(rng.integers(0, len(videos), len(videos)), minlength=len(videos))
        value = _auroc(group, n_groups, labels, copies[which].astype(np.float64))
        if not np.isnan(value):
            aurocs.append(value)
    if not aurocs:
        return None
    low, high = np.quantile(aurocs, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]
