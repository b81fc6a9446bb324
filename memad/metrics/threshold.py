"""Metrics of 0/1 decisions at a threshold: precision, recall, F1 and the false-alarm rate of
predicted frames (:func:`precision_recall_f1`), of images scored against a threshold
(:func:`f1_at_threshold`), and the oracle best F1 over all thresholds (:func:`best_f1`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, precision_recall_fscore_support

__all__ = ["precision_recall_f1", "f1_at_threshold", "best_f1"]


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
