"""Per-category metrics of image sets (defect types, digits): the image count, and for anomalous
categories the AUROC against all normal images and the mean score."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from ..errors import DataError

__all__ = ["category_metrics"]


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
