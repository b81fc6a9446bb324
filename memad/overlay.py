"""A frame with its per-pixel error drawn over it as a heatmap: what ``memad detect``'s video and report and
``memad explain``'s frame views show, and what tells an operator *where* in the frame the anomaly is.

>>> frame = np.zeros((40, 60, 3), np.uint8)
>>> error = np.zeros((8, 12)); error[2, 3] = 1.0
>>> shown = overlay_heatmap(frame, error, vmax=0.5)
>>> shown.shape, bool(shown[12, 17].any()), bool(shown[35, 55].any())
((40, 60, 3), True, False)
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

__all__ = ["overlay_heatmap", "to_rgb"]


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` uint8 as ``(H, W, 3)`` uint8."""
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame


def overlay_heatmap(frame: np.ndarray, error: np.ndarray | None, *, vmax: float = 0.05, alpha: float = 0.65,
                    cmap: str = "inferno") -> np.ndarray:
    """``frame`` (uint8, any size) with ``error`` (a float map of any size, resized to the frame) as a heatmap.

    The heat is ``error / vmax`` clipped to [0, 1], so colours mean the same error on every frame;
    where the error is zero the frame shows through, and the opacity grows with the error up to
    ``alpha``. Without an error map the frame is returned as RGB.
    """
    rgb = to_rgb(frame)
    if error is None:
        return rgb
    h, w = rgb.shape[:2]
    err = np.asarray(error, dtype=np.float32)
    if err.shape != (h, w):
        err = np.asarray(Image.fromarray(err).resize((w, h), Image.BILINEAR))
    heat = np.clip(err / max(float(vmax), 1e-12), 0.0, 1.0)
    colour = colormaps[cmap](heat)[..., :3] * 255.0
    weight = (alpha * heat)[..., None]
    return (rgb * (1.0 - weight) + colour * weight).round().clip(0, 255).astype(np.uint8)
