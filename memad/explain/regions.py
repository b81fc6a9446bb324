"""Where in a frame a memory level's reads are: grid maps shown at frame size, the most anomalous region
(the grid cell of largest error) and the item read there. Shared by ``memad explain``'s frame views and
the detect report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

__all__ = ["to_frame", "strongest_region", "grid_slot", "item_colours"]


def to_frame(grid_map: np.ndarray, cell: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """A ``(h, w)`` grid map at frame size: each cell repeated over the input pixels it stands for
    (:mod:`memad.scoring.reads`), cut to the frame.

    >>> to_frame(np.array([[1, 2]]), (2, 2), (2, 3)).tolist()
    [[1, 1, 2], [1, 1, 2]]
    """
    big = np.kron(np.asarray(grid_map), np.ones(cell, dtype=np.asarray(grid_map).dtype))
    return big[:frame_hw[0], :frame_hw[1]]


def grid_slot(maps: np.ndarray, score_offset: int, frames: int) -> np.ndarray:
    """A sample's ``(h, w)`` map: a 3D grid ``(t, h, w)`` gives the time slot holding the scored frame."""
    if maps.ndim == 2:
        return maps
    slots = maps.shape[0]
    return maps[min(slots - 1, max(0, score_offset) * slots // max(frames, 1))]


def _cell_means(error: np.ndarray, grid: tuple[int, int], cell: tuple[int, int], frame_hw: tuple[int, int]
                ) -> np.ndarray:
    """The error map (any size) averaged over each grid cell's input pixels (those inside the frame)."""
    h, w = frame_hw
    err = np.asarray(error, np.float32)
    if err.shape != (h, w):
        err = np.asarray(Image.fromarray(err).resize((w, h), Image.BILINEAR))
    full = np.full((grid[0] * cell[0], grid[1] * cell[1]), np.nan, np.float32)
    full[:min(h, full.shape[0]), :min(w, full.shape[1])] = err[:full.shape[0], :full.shape[1]]
    blocks = full.reshape(grid[0], cell[0], grid[1], cell[1])
    with np.errstate(invalid="ignore"):
        means = np.nanmean(blocks, axis=(1, 3))
    return np.nan_to_num(means, nan=-np.inf)


def strongest_region(assignment: np.ndarray, distance: np.ndarray, error: np.ndarray | None, cell: tuple[int, int],
                     frame_hw: tuple[int, int]) -> dict[str, Any]:
    """The grid cell of largest mean error (of largest distance without an error map): its position, item,
    distance, and its pixel box ``[top, left, height, width]`` in the frame.

    >>> err = np.zeros((4, 4)); err[3, 0] = 1.0
    >>> strongest_region(np.array([[0, 1], [2, 3]]), np.zeros((2, 2)), err, (2, 2), (4, 4))["item"]
    2
    """
    grid = assignment.shape
    score = _cell_means(error, grid, cell, frame_hw) if error is not None else np.asarray(distance, np.float64)
    i, j = np.unravel_index(int(np.argmax(score)), grid)
    top, left = i * cell[0], j * cell[1]
    box = [int(top), int(left), int(min(cell[0], frame_hw[0] - top)), int(min(cell[1], frame_hw[1] - left))]
    return {"i": int(i), "j": int(j), "item": int(assignment[i, j]), "distance": float(distance[i, j]), "box": box}


def item_colours(n: int) -> np.ndarray:
    """``(n, 3)`` RGB colours in [0, 1], one per item, the same in the atlas and the maps: matplotlib's
    ``tab10``/``tab20`` up to 20 items, then evenly spread hues.

    >>> item_colours(3).shape, bool((item_colours(300) <= 1).all())
    ((3, 3), True)
    """
    from matplotlib import colormaps, colors

    if n <= 10:
        return np.asarray(colormaps["tab10"].colors)[:n, :3]
    if n <= 20:
        return np.asarray(colormaps["tab20"].colors)[:n, :3]
    hues = (np.arange(n) * 0.6180339887) % 1.0  # golden-ratio steps: neighbours differ
    sat = 0.55 + 0.4 * ((np.arange(n) // 7) % 2)
    return colors.hsv_to_rgb(np.stack([hues, sat, np.full(n, 0.9)], axis=1))
