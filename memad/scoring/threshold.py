"""Deployment thresholds: pick a score threshold from normal data, then call frames 0/1.

Threshold-free metrics (AUROC, AUPR, EER) rank frames; a deployed detector must decide.
:func:`fit_threshold` picks the threshold as a percentile of anomaly scores on normal
frames (``percentile=99`` lets about 1% of normal frames through as false alarms;
``contamination=c`` is the same as ``percentile=100 * (1 - c)``). A frame is called
anomalous when its score is **at or above** the threshold.

Which score the threshold applies to
    A detector's calibrated scores (:mod:`memad.scoring.calibration`) depend on each frame
    alone, so a threshold fitted on normal videos means the same on any later video or live
    stream: what :meth:`Detector.calibrate` fits. Uncalibrated scores are the scorer's as
    configured: with per-video min-max scaling (the paper's) every video has a frame scoring
    1, so a threshold flags the top of *every* video, anomalous or not.

>>> import numpy as np
>>> t = threshold_from_scores(np.arange(10.0), percentile=90)
>>> round(t, 2), predict_labels(np.array([8.0, 8.1, 9.5]), t).tolist()
(8.1, [0, 1, 1])
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import ConfigError, NumericalError

__all__ = ["resolve_percentile", "threshold_from_scores", "conformal_threshold", "predict_labels",
           "DEFAULT_PERCENTILE"]

#: Used when neither ``percentile`` nor ``contamination`` is given: 1% of normal frames flagged.
DEFAULT_PERCENTILE = 99.0


def resolve_percentile(percentile: float | None = None, contamination: float | None = None) -> float:
    """The percentile of normal scores to use; exactly one of the two may be given.

    >>> resolve_percentile(contamination=0.05)
    95.0
    """
    if percentile is not None and contamination is not None:
        raise ConfigError(f"give percentile or contamination, not both (got percentile={percentile!r}, "
                          f"contamination={contamination!r})")
    if contamination is not None:
        if isinstance(contamination, bool) or not isinstance(contamination, (int, float)) \
                or not 0.0 <= contamination < 1.0:
            raise ConfigError(f"contamination: expected a fraction in [0, 1), got {contamination!r}")
        return 100.0 * (1.0 - float(contamination))
    if percentile is None:
        return DEFAULT_PERCENTILE
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0.0 < percentile <= 100.0:
        raise ConfigError(f"percentile: expected a value in (0, 100], got {percentile!r}")
    return float(percentile)


def threshold_from_scores(normal_scores: np.ndarray, percentile: float | None = None,
                          contamination: float | None = None) -> float:
    """The ``percentile`` of ``normal_scores`` (linear interpolation between frames)."""
    scores = _normal_scores(normal_scores)
    return float(np.percentile(scores, resolve_percentile(percentile, contamination)))


def _normal_scores(normal_scores: np.ndarray) -> np.ndarray:
    """The scores as a flat float64 array; an error when there are none or any is NaN or infinite."""
    scores = np.asarray(normal_scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ConfigError("cannot fit a threshold: no normal scores")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise NumericalError(f"cannot fit a threshold: {int(bad.sum())} of {scores.size} normal scores are NaN or "
                             f"infinite (first at index {int(np.argmax(bad))})")
    return scores


def conformal_threshold(normal_scores: np.ndarray, false_alarm_rate: float) -> float:
    """The split-conformal threshold for ``false_alarm_rate``: the ``ceil((n + 1)(1 - rate))``-th smallest
    of the ``n`` normal scores.

    A new normal frame exchangeable with those scored reaches it with probability at most
    ``false_alarm_rate`` (the plain percentile only approaches that as ``n`` grows, and lets
    more through with few frames). Needs ``n >= 1 / rate - 1`` frames; with fewer, the largest
    score is returned and a warning says how many frames the rate needs.

    >>> conformal_threshold(np.arange(1.0, 101.0), 0.05)  # the 96th smallest of 100
    96.0
    """
    resolve_percentile(contamination=false_alarm_rate)  # the rate's checks (a fraction in [0, 1))
    if false_alarm_rate == 0:
        raise ConfigError("false_alarm_rate: a conformal threshold needs a rate above 0, got 0")
    scores = np.sort(_normal_scores(normal_scores))
    n = scores.size
    k = math.ceil((n + 1) * (1.0 - false_alarm_rate))
    if k > n:
        needed = math.ceil(1 / false_alarm_rate - 1)
        warnings.warn(f"a false-alarm rate of {false_alarm_rate:g} needs at least {needed} "
                      f"normal frames to calibrate on, got {n}: the threshold is their largest score, and more than "
                      f"that rate of new normal frames may exceed it", stacklevel=2)
        k = n
    return float(scores[k - 1])


def predict_labels(scores: np.ndarray, threshold: float) -> np.ndarray:
    """0/1 per score: 1 where the score is at or above ``threshold``."""
    if threshold is None or not math.isfinite(float(threshold)):
        raise ConfigError(f"threshold: expected a finite number, got {threshold!r} (call fit_threshold first)")
    return (np.asarray(scores, dtype=np.float64) >= float(threshold)).astype(np.int8)
