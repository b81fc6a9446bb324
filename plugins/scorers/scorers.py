"""Per-frame anomaly scorers: PSNR, feature distance, the paper's weighted mix, local contrast, MemAE's
regularity, and a weighted sum of any named signals. Each returns scores where higher means
more anomalous, and scales signals through ``FrameStats.normalised`` so that the same scorer
gives the paper's per-video scores and calibrated ones."""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np

from memad import FrameStats, Scorer

Normalise = Literal["video", "global", "none"]


def _check_normalise(normalise: str) -> None:
    if normalise not in ("video", "global", "none"):
        raise ValueError(f"scorer.normalise: expected 'video', 'global' or 'none', got {normalise!r}")


class _Normalising(Scorer):
    def __init__(self, normalise: Normalise = "video"):
        _check_normalise(normalise)
        self.normalise = normalise

    @property
    def relative(self) -> bool:
        return self.normalise != "none"

    def config(self):
        return {"normalise": self.normalise}


class _Mixed(_Normalising):
    """A scorer that mixes a signal with the feature distance by ``weight``, in [0, 1]."""

    def __init__(self, weight: float, normalise: Normalise):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"scorer.weight: expected a value in [0, 1], got {weight!r}")
        super().__init__(normalise)
        self.weight = weight

    def config(self):
        return {"weight": self.weight, "normalise": self.normalise}


class WeightedScorer(_Mixed):
    """The paper's score: ``1 - [w g(PSNR) + (1 - w)(1 - g(D))]``, g = min-max per video.

    Without a feature distance (no memory), it is ``1 - g(PSNR)``.
    """

    requires = ("psnr",)

    def __init__(self, weight: float = 0.6, normalise: Normalise = "video"):
        super().__init__(weight, normalise)

    def __call__(self, stats: FrameStats) -> np.ndarray:
        g_psnr = stats.normalised("psnr", self.normalise)
        if stats.distance is None:
            return 1.0 - g_psnr
        g_dist = stats.normalised("distance", self.normalise)
        return 1.0 - (self.weight * g_psnr + (1.0 - self.weight) * (1.0 - g_dist))


class ContrastScorer(_Mixed):
    """``w g(contrast) + (1 - w) g(D)``: how much the frame's worst region's prediction error exceeds its
    whole error (:func:`memad.scoring.step.local_contrast`), mixed with the feature distance when ``weight``
    is below 1 and the memory reports one.

    A gain on the whole frame's error leaves ``contrast`` as it is, and an anomaly that covers most of the
    frame raises it less than PSNR's. Whether its calibrated threshold holds on scenes unlike the
    calibration videos depends on the scenes: it held on one draw of ``scenes`` and not on another
    (docs/deploy.md).

    >>> import numpy as np
    >>> stats = FrameStats(np.array([0, 0]), {"psnr": np.array([30., 20.]), "contrast": np.array([.5, 1.5])})
    >>> ContrastScorer()(stats).tolist()
    [0.0, 1.0]
    """

    requires = ("contrast",)

    def __init__(self, weight: float = 1.0, normalise: Normalise = "video"):
        super().__init__(weight, normalise)

    def __call__(self, stats: FrameStats) -> np.ndarray:
        g_contrast = stats.normalised("contrast", self.normalise)
        if stats.distance is None or self.weight == 1.0:
            return g_contrast
        return self.weight * g_contrast + (1.0 - self.weight) * stats.normalised("distance", self.normalise)


class PSNRScorer(_Normalising):
    """``1 - g(PSNR)``: low PSNR (poor prediction) is anomalous."""

    requires = ("psnr",)

    def __call__(self, stats: FrameStats) -> np.ndarray:
        return 1.0 - stats.normalised("psnr", self.normalise)


class DistanceScorer(_Normalising):
    """``g(D)``: queries far from their nearest memory item are anomalous."""

    requires = ("distance",)

    def __call__(self, stats: FrameStats) -> np.ndarray:
        return stats.normalised("distance", self.normalise)


class RegularityScorer(_Normalising):
    """MemAE's score: ``g(e)`` with e the frame's reconstruction error (1 - regularity).

    ``signal`` names the error: ``mse`` (the mean squared error of the frame) or a signal a
    model reports, such as the MemAE video model's ``clip_error`` (see ``plugins/memae``).
    """

    def __init__(self, normalise: Normalise = "video", signal: str = "mse"):
        super().__init__(normalise)
        self.signal = signal

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.signal,)

    def __call__(self, stats: FrameStats) -> np.ndarray:
        return stats.normalised(self.signal, self.normalise)

    def config(self):
        return {"normalise": self.normalise, "signal": self.signal}


class SignalsScorer(_Normalising):
    """A weighted sum of normalised signals: ``sum_s w_s g(s)``; a negative weight for a
    signal that is low on anomalies (``psnr: -1``). For a model whose memory or decoder
    reports signals of its own, with no scorer written for it.

    >>> import numpy as np
    >>> stats = FrameStats(np.array([0, 0]), {"psnr": np.array([30., 20.]), "distance": np.array([.1, .3])})
    >>> SignalsScorer({"psnr": -0.5, "distance": 0.5})(stats).tolist()
    [-0.5, 0.5]
    """

    def __init__(self, weights: dict[str, float] = {"psnr": -1.0}, normalise: Normalise = "video"):
        if not weights or not all(isinstance(v, (int, float)) for v in weights.values()):
            raise ValueError(f"scorer.weights: expected {{signal: weight}} with numeric weights, got {weights!r}")
        super().__init__(normalise)
        self.weights: Mapping[str, float] = dict(weights)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.weights)

    def __call__(self, stats: FrameStats) -> np.ndarray:
        return sum(w * stats.normalised(name, self.normalise) for name, w in self.weights.items())

    def config(self):
        return {"weights": dict(self.weights), "normalise": self.normalise}
