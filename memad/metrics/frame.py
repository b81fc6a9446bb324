"""Frame-level metrics of scored test frames: the pooled AUROC, AUPR and EER (:func:`frame_metrics`),
the mean per-video AUROC with a stated treatment of one-class videos (:func:`frame_auroc_macro`), and
the AUROC of each scene of a multi-scene dataset (:func:`frame_auroc_per_scene`).

See docs/metrics.md for the definitions and where each comes from.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ..errors import ConfigError, DataError, NumericalError
from ._inputs import frame_arrays, two_classes

__all__ = ["frame_metrics", "eer", "frame_auroc_macro", "frame_auroc_per_scene", "shanghaitech_scene",
           "shanghaitech_scenes", "SINGLE_CLASS"]

#: How :func:`frame_auroc_macro` treats a video holding one class only (see its docstring).
SINGLE_CLASS = ("pad", "pad_single", "skip")


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
    # the same as frame_auroc_macro(..., single_class="skip"), kept as it was: recorded figures rely on it
    per_video = [roc_auc_score(labels[video == v], scores[video == v]) for v in np.unique(video)
                 if len(np.unique(labels[video == v])) == 2]
    return {
        "frame_auroc": float(roc_auc_score(labels, scores)),
        "frame_auroc_macro": float(np.mean(per_video)) if per_video else None,
        "aupr": float(average_precision_score(labels, scores)),
        "eer": eer(labels, scores),
    }


def frame_auroc_macro(scores: np.ndarray, labels: np.ndarray, video: np.ndarray, *,
                      single_class: str = "pad") -> float | None:
    """The mean over test videos of each video's frame AUROC (the "macro" AUROC).

    A video holding one class only has no AUROC of its own; ``single_class`` says what is done:

    - ``"pad"`` (default, the convention of the papers that report the macro AUROC: the public
      evaluation scripts of Georgescu et al. 2021, Ristea et al. 2022 and Acsintoae et al. 2022 append a
      normal frame scored 0 and an anomalous frame scored 1 to *every* video's per-video min-max
      normalised scores): every video gets a dummy normal frame at its lowest score and a dummy
      anomalous frame at its highest (the same thing, whatever the scores' scale).
    - ``"pad_single"``: a one-class video gets one dummy frame of the class it lacks, a normal one at
      its lowest score or an anomalous one at its highest (as Georgescu et al. describe their macro
      AUROC); the other videos are left as they are.
    - ``"skip"``: one-class videos are left out (as ``frame_metrics``' ``frame_auroc_macro``).

    None when no video is left. Frames are grouped by ``video`` id; their order does not matter.

    >>> s, y, v = np.array([.2, .5, .9, .1, .8]), np.array([1, 1, 1, 0, 1]), np.array([0, 0, 0, 1, 1])
    >>> frame_auroc_macro(s, y, v, single_class="skip"), frame_auroc_macro(s, y, v, single_class="pad_single")
    (1.0, 0.9166666666666666)
    """
    if single_class not in SINGLE_CLASS:
        raise ConfigError(f"single_class must be one of {', '.join(SINGLE_CLASS)}, got {single_class!r}")
    scores, labels, video = frame_arrays(scores, labels, video)
    per_video = []
    for v in np.unique(video):
        s, y = scores[video == v], labels[video == v]
        if single_class == "pad":
            s, y = np.concatenate([[s.min()], s, [s.max()]]), np.concatenate([[False], y, [True]])
        elif not two_classes(y):
            if single_class == "skip":
                continue
            s, y = np.append(s, s.min() if y.all() else s.max()), np.append(y, not y.all())
        per_video.append(roc_auc_score(y, s))
    return float(np.mean(per_video)) if per_video else None


def _scene_of_each_frame(video: np.ndarray, scenes: Mapping[Any, Any] | Sequence[Any] | np.ndarray) -> np.ndarray:
    if isinstance(scenes, Mapping):
        missing = [v for v in np.unique(video).tolist() if v not in scenes]
        if missing:
            raise DataError(f"scenes: no scene for video {missing[0]!r} ({len(missing)} videos without one); "
                            "expected a mapping from every video id to its scene")
        return np.array([scenes[v] for v in video.tolist()], dtype=object)
    out = np.asarray(scenes, dtype=object)
    if out.shape != video.shape:
        raise DataError(f"scenes: {out.shape} entries for {video.shape[0]} frames; expected one scene per frame "
                        "or a mapping from video id to scene")
    return out


def frame_auroc_per_scene(scores: np.ndarray, labels: np.ndarray, video: np.ndarray,
                          scenes: Mapping[Any, Any] | Sequence[Any] | np.ndarray) -> dict[str, float | None]:
    """``{scene: AUROC}``: the AUROC of the frames of each scene's videos pooled (None for a scene whose
    frames hold one class). ``scenes`` maps each video id to its scene, or gives one scene per frame.

    >>> frame_auroc_per_scene(np.array([.1, .9, .3, .2]), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]),
    ...                       {0: "01", 1: "02"})
    {'01': 1.0, '02': 0.0}
    """
    scores, labels, video = frame_arrays(scores, labels, video)
    scene = _scene_of_each_frame(video, scenes)
    scene = np.array([str(s) for s in scene])
    out: dict[str, float | None] = {}
    for name in sorted(set(scene.tolist())):
        sel = scene == name
        out[name] = float(roc_auc_score(labels[sel], scores[sel])) if two_classes(labels[sel]) else None
    return out


def shanghaitech_scene(name: str) -> str:
    """The scene of a ShanghaiTech video: its name's part before the first ``_`` (``'01_0014'`` -> ``'01'``)."""
    stem = str(name).rsplit("/", 1)[-1]
    scene, sep, rest = stem.partition("_")
    if not sep or not scene or not rest:
        raise DataError(f"video name {name!r}: expected ShanghaiTech's '<scene>_<clip>' (e.g. '01_0014')")
    return scene


def shanghaitech_scenes(names: Sequence[str]) -> dict[int, str]:
    """``{video index: scene}`` for videos named as ShanghaiTech's, in order (for :func:`frame_auroc_per_scene`)."""
    return {i: shanghaitech_scene(n) for i, n in enumerate(names)}
