"""What the detect report shows of the memory: for each frame, the item read in its most anomalous
region, and, once for the page, every item's exemplars and normal distances from the calibration.

The most anomalous region is the memory grid cell of largest mean error (:func:`memad.explain.regions.
strongest_region`); the item is the one that cell's query was assigned to (:meth:`memad.Memory.explain`,
recorded during the stream, before the test-time write) and its distance is that query's. The normal
reference is the calibration's record of the same memory reading normal frames
(``calibration_["memory"]``, :mod:`memad.scoring.calibration`): per item, the quantiles of the
distances of the query positions assigned to it, and its nearest exemplar crops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import image_hw
from ..explain.regions import grid_slot, item_colours, strongest_region
from ..explanation import explained_part
from ..scoring.reads import recording

__all__ = ["MemoryView"]


class MemoryView:
    """Records a detector's memory reads while it streams; :meth:`regions` gives the last frame's."""

    def __init__(self, model: Any, profile: dict[str, Any]):
        self.model, self.profile = model, profile
        self.frame_hw = image_hw(model.config)
        self.latest: list | None = None
        self._recording = recording(model.network, self._keep)
        self._recording.__enter__()

    @staticmethod
    def why_not(model: Any) -> str | None:
        """Why the report cannot show the memory's reads for ``model`` (None when it can)."""
        network = getattr(model, "network", None)
        if network is None:
            return "an exported model: the memory's reads are shown for checkpoints (engine torch) only"
        if explained_part(network) is None:
            return f"memory {model.config['memory']['name']!r} does not explain its reads (it has no explain())"
        if not (model.calibration_ or {}).get("memory"):
            return "the calibration did not record the memory's reads of normal frames: run memad calibrate again"
        return None

    @classmethod
    def open(cls, model: Any) -> "MemoryView | None":
        """A view recording ``model``'s reads, or None when :meth:`why_not` has a reason."""
        return None if cls.why_not(model) is not None else cls(model, model.calibration_["memory"])

    def _keep(self, x: Any, levels: list) -> None:
        self.latest = levels

    def regions(self, error_map: np.ndarray | None) -> list[list[float]] | None:
        """Per level ``[item, distance, top, left, height, width]`` (the box as fractions of the frame) of the
        last frame streamed, or None when none was recorded."""
        if self.latest is None:
            return None
        out = []
        offset, frames = self.model.score_offset, self.model.config["data"]["frames"]
        for e in self.latest:
            assign = grid_slot(e.assignment[0].cpu().numpy(), offset, frames)
            dist = grid_slot(e.distance[0].float().cpu().numpy(), offset, frames)
            r = strongest_region(assign, dist, error_map, e.cell, self.frame_hw)
            top, left, h, w = r["box"]
            hh, ww = self.frame_hw
            out.append([r["item"], round(r["distance"], 6), round(top / hh, 4), round(left / ww, 4), round(h / hh, 4),
                        round(w / ww, 4)])
        self.latest = None
        return out

    def payload(self) -> dict[str, Any]:
        """The page's memory section (embedded once): per level its items' colours, normal usage shares,
        distance quantiles and exemplar strips."""
        levels = []
        for lv in self.profile["levels"]:
            usage = np.asarray(lv["usage"], np.float64)
            share = usage / usage.sum() if usage.sum() else usage
            colours = ["#%02x%02x%02x" % tuple(int(255 * c) for c in rgb) for rgb in item_colours(lv["items"])]
            levels.append({"name": "unit" if lv["level"] is None else f"level {lv['level']}", "items": lv["items"],
                           "per_input": lv["per_input"], "share": [round(float(v), 5) for v in share],
                           "quantiles": lv["quantiles"], "distance": lv["distance"], "exemplars": lv["exemplars"],
                           "colours": colours})
        return {"levels": levels, "samples": self.profile["samples"]}

    def close(self) -> None:
        self._recording.__exit__(None, None, None)
