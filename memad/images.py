"""Image-level metrics for one-class image sets: per category, and F1 at a threshold.

Test images of an :class:`memad.data.ImageSet` carry a category (``good`` or the defect
type; the digit for ``digits``). A category's AUROC ranks the normal test images against
that category's images alone, so it says which defects (or digits) a detector finds hard.

>>> import numpy as np
>>> m = category_metrics(np.array([.1, .2, .9, .3]), np.array([0, 0, 1, 1]), ["good", "good", "cut", "dent"])
>>> m["cut"]["auroc"], m["dent"]["auroc"], m["good"]
(1.0, 1.0, {'images': 2, 'normal': True})
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

from .errors import DataError


def category_metrics(scores: np.ndarray, labels: np.ndarray, categories: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per category: its image count, and for anomalous ones the AUROC against all normal images.

    A category is normal when its images are labelled 0. The mean score per category is
    included so that a reader can see how far apart they lie.
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


def image_table(scores, threshold: float | None = None) -> list[dict[str, Any]]:
    """One row per scored image of a :class:`memad.evaluation.Scores`: file, category, label, score, flagged."""
    files = scores.extra.get("files")
    cats = scores.extra.get("categories")
    rows = []
    for i, s in enumerate(scores.scores):
        row: dict[str, Any] = {"file": files[i] if files is not None else str(int(scores.frame[i])),
                               "category": None if cats is None else str(cats[i]),
                               "label": None if scores.labels is None else int(scores.labels[i]), "score": float(s)}
        if threshold is not None:
            row["flagged"] = bool(s >= threshold)
        rows.append(row)
    return rows


def evaluate_images(detector, data: Any, threshold: float | None = None) -> dict[str, Any]:
    """The image report: :meth:`Detector.evaluate`'s metrics plus F1 at a threshold and the best F1.

    ``threshold`` defaults to ``detector.threshold_`` (set by ``fit_threshold``); without
    either, only the oracle ``best_f1`` (threshold chosen on the test labels) is given.
    ``images`` lists every test image with its file, category, label, score (and flag).
    """
    scores = detector.score(data)
    out = scores.metrics()
    threshold = detector.threshold_ if threshold is None else threshold
    out["f1_at_threshold"] = None if threshold is None else f1_at_threshold(scores.scores, scores.labels, threshold)
    out["best_f1"] = best_f1(scores.scores, scores.labels) if len(set(scores.labels.tolist())) == 2 else None
    out["images"] = image_table(scores, threshold)
    return out
