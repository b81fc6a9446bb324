"""The image report: every test image of a one-class image set with its score, and the
metrics of :mod:`memad.metrics` (per category, F1 at a threshold, the best F1).
"""

from __future__ import annotations

from typing import Any

from ..metrics import best_f1, f1_at_threshold


def image_table(scores, threshold: float | None = None) -> list[dict[str, Any]]:
    """One row per scored image of a :class:`memad.scoring.runner.Scores`: file, category, label, score
    (calibrated when the detector is), flagged."""
    files = scores.extra.get("files")
    cats = scores.extra.get("categories")
    rows = []
    for i, s in enumerate(scores.decision):
        row: dict[str, Any] = {"file": files[i] if files is not None else str(int(scores.frame[i])),
                               "category": None if cats is None else str(cats[i]),
                               "label": None if scores.labels is None else int(scores.labels[i]), "score": float(s)}
        if threshold is not None:
            row["flagged"] = bool(s >= threshold)
        rows.append(row)
    return rows


def evaluate_images(detector, data: Any, threshold: float | None = None) -> dict[str, Any]:
    """The image report: :meth:`Detector.evaluate`'s metrics plus F1 at a threshold and the best F1.

    ``threshold`` defaults to ``detector.threshold_`` (set by ``calibrate`` or ``fit_threshold``); without
    either, only the oracle ``best_f1`` (threshold chosen on the test labels) is given. Thresholds
    apply to the calibrated scores of a calibrated detector.
    ``images`` lists every test image with its file, category, label, score (and flag).
    """
    scores = detector.score(data)
    out = scores.metrics()
    threshold = detector.threshold_ if threshold is None else threshold
    values = scores.decision
    out["f1_at_threshold"] = None if threshold is None else f1_at_threshold(values, scores.labels, threshold)
    out["best_f1"] = best_f1(values, scores.labels) if len(set(scores.labels.tolist())) == 2 else None
    out["images"] = image_table(scores, threshold)
    return out
