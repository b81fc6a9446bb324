"""Metrics of scored frames against the ground truth: frame AUROC (pooled and per video),
AUPR, EER, pixel AUROC, per-category AUROC of image sets, and precision/recall/F1 at a threshold.

Plain functions of numpy arrays (and the error-map tensors for the pixel AUROC), apart from
the loop that produced the scores (:mod:`memad.scoring.runner`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from torch import Tensor

from .errors import DataError, NumericalError

__all__ = ["frame_metrics", "pixel_auroc", "eer", "precision_recall_f1", "category_metrics", "f1_at_threshold",
           "best_f1"]


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where the false-positive and false-negative rates meet."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def frame_metrics(scores: np.ndarray, labels: np.ndarray, video: np.ndarray) -> dict[str, Any]:
    """Pooled AUROC over all frames, mean per-video AUROC (videos with both classes), AUPR, EER.

    >>> m = frame_metrics(np.array([.1, .9, .2, .8]), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    >>> m["frame_auroc"], m["frame_auroc_macro"], m["eer"]
    (1.0, 1.0, 0.0)
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise NumericalError(f"{int(bad.sum())} anomaly scores are NaN or infinite (first at scored frame "
                             f"{int(np.argmax(bad))}); the metrics would be meaningless")
    if len(np.unique(labels)) < 2:
        return {"frame_auroc": None, "frame_auroc_macro": None, "aupr": None, "eer": None}
    per_video = [roc_auc_score(labels[video == v], scores[video == v]) for v in np.unique(video)
                 if len(np.unique(labels[video == v])) == 2]
    return {
        "frame_auroc": float(roc_auc_score(labels, scores)),
        "frame_auroc_macro": float(np.mean(per_video)) if per_video else None,
        "aupr": float(average_precision_score(labels, scores)),
        "eer": eer(labels, scores),
    }


def pixel_auroc(maps: Tensor | None, masks: Tensor | None) -> float | None:
    """AUROC of per-pixel errors against the masks (None without masks or with one class)."""
    if maps is None or masks is None:
        return None
    y = masks.reshape(-1).numpy().astype(np.int8)
    if y.min() == y.max():
        return None
    s = maps.reshape(-1).float().numpy()
    return float(roc_auc_score(y, s))


def precision_recall_f1(labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Precision, recall and F1 of 0/1 ``predicted`` against 0/1 ``labels`` (0 where undefined),
    and the false-alarm rate: the fraction of normal frames flagged.

    >>> precision_recall_f1(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'flagged': 2, 'false_alarm_rate': 0.5}
    """
    labels, predicted = np.asarray(labels).astype(int), np.asarray(predicted).astype(int)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
    p, r, f, _ = precision_recall_fscore_support(labels, predicted, average="binary", pos_label=1, zero_division=0)
    normal = labels == 0
    far = float(predicted[normal].mean()) if normal.any() else None
    return {"precision": float(p), "recall": float(r), "f1": float(f), "flagged": int(predicted.sum()),
            "false_alarm_rate": far}


def category_metrics(scores: np.ndarray, labels: np.ndarray, categories: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per category of an image set: its image count, and for anomalous ones the AUROC against
    all normal images (which defects, or digits, a detector finds hard) and the mean score.

    >>> m = category_metrics(np.array([.1, .2, .9, .3]), np.array([0, 0, 1, 1]), ["good", "good", "cut", "dent"])
    >>> m["cut"]["auroc"], m["dent"]["auroc"], m["good"]
    (1.0, 1.0, {'images': 2, 'normal': True})
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    categories = np.asarray(categories, dtype=object)
    if not len(scores) == len(labels) == len(categories):
        raise DataError(f"{len(scores)} scores, {len(labels)} labels and {len(categories)} categories: "
                        "expected one of each per image")
    normal = labels == 0
    out: dict[str, dict[str, Any]] = {}
    for cat in sorted(set(categories), key=lambda c: (c != "good", c)):
        sel = categories == cat
        kinds = set(labels[sel])
        if len(kinds) > 1:
            raise DataError(f"category {cat!r} holds both normal and anomalous images; expected one label per category")
        if kinds == {0}:
            out[str(cat)] = {"images": int(sel.sum()), "normal": True}
            continue
        entry: dict[str, Any] = {"images": int(sel.sum()), "normal": False, "mean_score": float(scores[sel].mean())}
        both = normal | sel
        entry["auroc"] = float(roc_auc_score(labels[both], scores[both])) if normal.any() else None
        out[str(cat)] = entry
    return out


def f1_at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 when images scoring ``>= threshold`` are called anomalous.

    >>> f1_at_threshold(np.array([.1, .6, .7, .2]), np.array([0, 0, 1, 1]), 0.5)
    {'threshold': 0.5, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5}
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    flagged = scores >= threshold
    tp = int((flagged & labels).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / labels.sum() if labels.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"threshold": float(threshold), "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def best_f1(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The highest F1 over all thresholds, and that threshold (an oracle: it looks at the test labels).

    Flagging ``>= 0.2`` catches both anomalies with one false alarm: P = 2/3, R = 1, F1 = 0.8.

    >>> best_f1(np.array([.1, .6, .7, .2]), np.array([0, 0, 1, 1]))
    {'threshold': 0.2, 'f1': 0.8}
    """
    precision, recall, thresholds = precision_recall_curve(np.asarray(labels).astype(int), scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    i = int(np.argmax(f1))
    return {"threshold": float(thresholds[i]), "f1": float(f1[i])}
