"""``memad maps``: the anomaly maps of the top-scoring test images (or frames) as a PNG grid.

The grid is drawn by :func:`memad.reports.plots.top_frames_grid`: each cell shows an image with its
per-pixel squared reconstruction error as a heatmap and the ground-truth mask outlined
in cyan where masks exist. For image sets each cell is captioned with its file name and
category (defect type or digit); the ranked list is also printed.

    memad maps runs/ae/checkpoint.pt --data path/to/mvtec/bottle --top 12 --out bottle_maps.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def image_captions(scores) -> list[str] | None:
    """``"<category>/<file name>"`` per scored image of an image set, else None (videos keep their titles)."""
    cats = scores.extra.get("categories")
    if cats is None:
        return None
    files = scores.extra.get("files")
    return [f"{c}/{Path(f).name}" if files is not None else str(c) for c, f in
            zip(cats, files if files is not None else [None] * len(cats))]


def write_maps(detector, data: Any, out: str | Path, *, top: int = 8, columns: int = 4,
               labels: str | Path | None = None, lowest: int = 0) -> list[dict[str, Any]]:
    """Score the test split of ``data``, write the ``top`` highest-scoring maps to ``out``; returns them ranked.

    With ``lowest``, the grid also shows that many lowest-scoring images (from a new row, on the
    same colour scale) and the returned list ends with them, lowest last, each with its rank.
    """
    from ..data import open_split
    from .images import image_table
    from .plots import top_frames_grid

    test = open_split(data, "testing", detector.config, labels=labels)
    scores = detector.score(test, keep_maps=top, keep_lowest=lowest)
    captions = image_captions(scores)
    name = detector.config["name"]
    n = len(scores.scores)
    title = f"{name}: top {min(top, n)} of {n} by anomaly score"
    ranked = np.argsort(-np.asarray(scores.scores), kind="stable")
    shown = ranked[:top].tolist()
    low = [r for r in range(n - 1, -1, -1) if r >= top][:lowest][::-1]  # ranks, lowest last
    if low:
        title += f"; from the row after them, the {len(low)} lowest (same colour scale)"
    top_frames_grid(scores, test, out, k=top, columns=columns, captions=captions, title=title, lowest=lowest)
    rows = image_table(scores, detector.threshold_)
    return [{"rank": r + 1, **rows[i]} for r, i in enumerate(shown)] + \
        [{"rank": r + 1, **rows[ranked[r]]} for r in low]
