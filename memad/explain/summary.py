"""``explain.json``: the numbers of a memory explanation, as plain data (see :func:`summary`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..scoring import reads

# An Explanation of memad.explain.run (not imported: run imports this module to write).
Explanation = Any

__all__ = ["summary", "RULE"]

#: The receptive-field rule the crops follow, stated in the file.
RULE = (reads.__doc__ or "").split("The receptive-field rule: ", 1)[-1].split("\n\n")[0].replace("\n", " ").strip()


def summary(expl: Explanation, regions: dict[str, list[dict[str, Any]]], files: dict[str, Any]) -> dict[str, Any]:
    """Per level: training usage (shares, effective number, dead and rare items), each item's distance
    quantiles and exemplar sources, the geometry, per-video test usage; the frames shown with the item read
    in their largest-error cell; the test metrics when the test split has labels; the files written."""
    scores = expl.scores
    levels = []
    for lv in expl.levels:
        geometry = dict(lv.geometry)
        if "pairwise" in geometry:  # the matrix for up to 100 items (geometry.png draws it up to 200)
            pairwise = np.asarray(geometry.pop("pairwise"))
            if lv.num_items <= 100:
                geometry["pairwise"] = pairwise.tolist()
        test_eff = [u.effective for u in lv.test_usage.values()]
        levels.append({
            "level": lv.level, "cell": list(lv.cell), "grid": list(lv.grid), "items": lv.num_items,
            "per_input": lv.per_input, "training": lv.train.as_dict(),
            "distance_quantiles": {"q": [0.5, 0.9, 0.99], "per_item": lv.distance_quantiles},
            "exemplars": lv.exemplar_source, "geometry": geometry,
            "test": {"effective_items_mean": round(float(np.mean(test_eff)), 4) if test_eff else None,
                     "per_video": {v: u.as_dict() for v, u in lv.test_usage.items()}},
        })
    frames = []
    for pos in expl.chosen:
        label = expl.frame_label(pos)
        frames.append({"frame": label, "score": round(float(scores.scores[pos]), 6),
                       "anomalous": None if scores.labels is None else bool(scores.labels[pos]),
                       "regions": regions.get(label, [])})
    metrics = None
    if scores.labels is not None and 0 < scores.labels.sum() < len(scores.labels):
        m = scores.metrics()
        metrics = {k: m[k] for k in ("frame_auroc", "frame_auroc_macro", "pixel_auroc") if k in m}
    return {"detector": expl.detector_name, "settings": expl.settings, "receptive_field": RULE,
            "training_samples": expl.train_samples, "test_frames": int(len(scores.frame)), "metrics": metrics,
            "levels": levels, "frames": frames, "files": files}
