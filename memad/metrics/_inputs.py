"""Input checks the metric functions share: finite scores, 0/1 labels, one video id per frame."""

from __future__ import annotations

import numpy as np

from ..errors import DataError, NumericalError


def finite_scores(scores: np.ndarray, what: str = "anomaly scores") -> np.ndarray:
    """``scores`` as float64, refused (one line naming the first bad one) when any is NaN or infinite."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), scores.shape) if scores.ndim > 1 else int(np.argmax(bad))
        raise NumericalError(f"{int(bad.sum())} {what} are NaN or infinite (first at {first}); "
                             "the metrics would be meaningless")
    return scores


def frame_arrays(scores: np.ndarray, labels: np.ndarray,
                 video: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (float64), labels (bool) and video ids of the scored frames, checked to be one of each per frame."""
    scores = finite_scores(scores)
    labels, video = np.asarray(labels), np.asarray(video)
    if scores.ndim != 1 or labels.shape != scores.shape or video.shape != scores.shape:
        raise DataError(f"scores {scores.shape}, labels {labels.shape} and video {video.shape}: "
                        "expected three 1-d arrays with one entry per frame")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise DataError(f"labels hold {sorted(set(np.unique(labels).tolist()) - {0, 1})[:3]}: expected 0 (normal) "
                        "or 1 (anomalous) per frame")
    return scores, labels.astype(bool), video


def two_classes(labels: np.ndarray) -> bool:
    """Whether ``labels`` hold both a normal and an anomalous frame."""
    return bool(labels.any() and not labels.all())
