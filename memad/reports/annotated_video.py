"""The annotated video of ``memad detect``: each frame with its error heatmap, and below it the
recent score curve against the threshold; frames inside an anomalous event get a red border.

Written one frame at a time through :class:`memad.data.video_files.VideoWriter` (constant
memory, atomically renamed into place when closed).
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.video_files import VideoWriter
from ..overlay import to_rgb

__all__ = ["AnnotatedVideoWriter"]

STRIP = 72  # height of the score strip, pixels
BORDER = 4
RED, GREEN, WHITE, GREY = (230, 40, 40), (60, 200, 90), (240, 240, 240), (110, 110, 110)


class AnnotatedVideoWriter:
    """Append frames (already overlaid with their heatmap) with their score and decision.

    Args:
        path: the video file (``.mp4``: H.264).
        fps: frames per second of the output.
        threshold: drawn as a line on the score strip.
        width: frames are scaled to this width (keeping the aspect ratio; even sizes for the encoder).
        history: frames of score curve shown.
    """

    def __init__(self, path: str | Path, *, fps: float = 25.0, threshold: float, width: int = 640,
                 history: int = 200):
        self.writer = VideoWriter(path, fps)
        self.threshold, self.width = float(threshold), int(width)
        self.scores: collections.deque[float] = collections.deque(maxlen=history)
        self.path = Path(path)

    def write(self, frame: np.ndarray, *, score: float, decision: bool, event: bool = False) -> None:
        """One output frame: ``frame`` ``(H, W[, C])`` uint8, its calibrated ``score`` and 0/1 ``decision``."""
        self.scores.append(float(score))
        img = Image.fromarray(to_rgb(frame))
        w = self.width - self.width % 2
        h = max(2, round(img.height * w / img.width) // 2 * 2)
        canvas = Image.new("RGB", (w, h + STRIP), (20, 20, 20))
        canvas.paste(img.resize((w, h), Image.BILINEAR), (0, 0))
        draw = ImageDraw.Draw(canvas)
        if event or decision:
            draw.rectangle([0, 0, w - 1, h - 1], outline=RED, width=BORDER)
        self._strip(draw, w, h)
        label = f"score {score:.3f}  threshold {self.threshold:.3f}  {'ANOMALY' if decision else 'normal'}"
        draw.text((6, h + 4), label, fill=RED if decision else WHITE)
        self.writer.write(np.asarray(canvas))

    def _strip(self, draw: ImageDraw.ImageDraw, w: int, top: int) -> None:
        values = np.array(self.scores)
        lo = min(values.min(), self.threshold) - 0.1 * abs(self.threshold) - 1e-6
        hi = max(values.max(), self.threshold) + 0.1 * abs(self.threshold) + 1e-6
        y0, y1 = top + 18, top + STRIP - 4

        def y(v: float) -> float:
            return y1 - (v - lo) / (hi - lo) * (y1 - y0)

        step = w / max(self.scores.maxlen - 1, 1)
        x0 = w - step * (len(values) - 1)
        draw.line([(0, y(self.threshold)), (w, y(self.threshold))], fill=GREY, width=1)
        points = [(x0 + i * step, y(v)) for i, v in enumerate(values)]
        if len(points) > 1:
            draw.line(points, fill=GREEN, width=2)
        draw.ellipse([points[-1][0] - 3, points[-1][1] - 3, points[-1][0] + 3, points[-1][1] + 3],
                     fill=RED if values[-1] >= self.threshold else GREEN)

    def close(self) -> Path:
        return self.writer.close() if self.writer.frames else self.path

    def abort(self) -> None:
        self.writer.abort()
