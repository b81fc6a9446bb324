"""Drawing for the ``scenes`` dataset: one scene per video (paving, light, camera, crowd), walkers, events.

Everything is in "walkway units": a frame is 64 units a side whatever its size in pixels, so a
scene looks the same rendered at 64 or 256 pixels. A scene is drawn in reflectance (about 0.5 on
average), then seen through the video's camera: illumination (a spatial gradient, a slow drift,
optional flicker), a colour cast, brightness and contrast, Gaussian noise.

Each draw is :func:`pick` ``(u, lo, hi, centre)``: uniform in ``[lo, hi]`` at ``variety`` 1, the
``centre`` at ``variety`` 0 (every video then shows one scene, as ``synthetic`` does), in between
a proportionally narrower range around the centre. The paving kind (else ``tiles``) and the
flicker are random in a ``variety`` share of the videos, and the border moves from grey to its
random ground. Every draw is taken whatever ``variety`` is, so the random streams (and the
walkers' and events' paths) do not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

UNITS = 64.0  # a frame is 64 walkway units a side
KINDS = ("tiles", "bricks", "planks", "cobbles", "gravel")
#: Border (off-walkway) reflectances: grass, soil, grey gravel, asphalt; mixed per scene.
BORDERS = np.array([[0.30, 0.46, 0.22], [0.50, 0.40, 0.30], [0.50, 0.50, 0.50], [0.28, 0.28, 0.30]])
MASK_ALPHA = 0.0  # a pixel belongs to an object's mask when the object covers any of it


def pick(u: float, lo: float, hi: float, centre: float, variety: float) -> float:
    """``lo + u (hi - lo)`` pulled towards ``centre`` by ``1 - variety``."""
    return centre + variety * (lo + u * (hi - lo) - centre)


@dataclass(frozen=True)
class Scene:
    """What one video's scene is made of (lengths in walkway units, speeds in units per frame)."""

    kind: str
    period: float           # paving cell size
    angle: float            # paving orientation, degrees
    joint: float            # darkening of the joints between cells
    shade: float            # spread of the cells' shades
    grain: float            # fine texture of the surface
    band_centre: float      # the walkway's centre line, fraction of the height
    band_half: float        # its half width, fraction of the height
    pave_rgb: tuple[float, float, float]
    border_rgb: tuple[float, float, float]
    brightness: float       # mean grey level the camera maps the scene to
    contrast: float
    cast: tuple[float, float, float]     # per-channel gains (luma-weighted mean 1)
    gradient: tuple[float, float]        # illumination slope across x and y
    drift: float            # amplitude of the slow illumination drift
    drift_period: float     # its period, frames
    drift_phase: float
    flicker: float          # standard deviation of the per-frame gain (0: none)
    noise: float            # camera noise standard deviation
    walkers: int            # crowd size
    walker_height: float
    walker_speed: float
    shadow: tuple[float, float, float]   # shadow offset (x, y, fraction of a body's height) and darkness

    def describe(self) -> dict[str, object]:
        """The fields as plain values (rounded), for tables and messages."""
        return {k: (round(v, 3) if isinstance(v, float) else [round(x, 3) for x in v] if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}


def draw_scene(rng: np.random.Generator, variety: float) -> Scene:
    """One scene; ``variety`` 0 gives the same (central) scene whatever ``rng``."""
    u = rng.uniform(size=32)
    v = variety

    def p(i: int, lo: float, hi: float, centre: float) -> float:
        return pick(float(u[i]), lo, hi, centre, v)

    kind = KINDS[int(u[0] * len(KINDS))] if u[1] < v else "tiles"
    mix = rng.dirichlet(np.ones(len(BORDERS)))
    border = (1 - v) * np.full(3, 0.45) + v * (mix @ BORDERS)
    # Paving tints and white balance vary along the warm-cool axis, a little along green-magenta.
    tint = np.array([1.0, 0.0, -1.0]) * p(2, -0.06, 0.06, 0) + np.array([-0.5, 1.0, -0.5]) * p(3, -0.02, 0.02, 0)
    cast = np.exp(np.array([1.0, 0.0, -1.0]) * p(5, -0.12, 0.12, 0) + np.array([0, 1.0, 0]) * p(6, -0.05, 0.05, 0))
    cast /= cast @ np.array([0.299, 0.587, 0.114])
    shadow_angle = p(8, 0.0, 2 * math.pi, 0.4 * math.pi)
    shadow_len = p(9, 0.0, 0.5, 0.2)
    return Scene(
        kind=kind, period=p(10, 4.0, 14.0, 8.0), angle=p(11, 0.0, 90.0, 0.0), joint=p(12, 0.05, 0.45, 0.25),
        shade=p(13, 0.0, 0.14, 0.06), grain=p(14, 0.01, 0.08, 0.03),
        band_centre=p(15, 0.44, 0.56, 0.5), band_half=p(16, 0.22, 0.34, 0.28),
        pave_rgb=tuple(float(x) for x in 0.5 + tint), border_rgb=tuple(float(x) for x in border),
        brightness=p(17, 0.28, 0.72, 0.5), contrast=p(18, 0.55, 1.45, 1.0), cast=tuple(float(x) for x in cast),
        gradient=(p(19, -0.3, 0.3, 0.0), p(20, -0.3, 0.3, 0.0)),
        drift=p(21, 0.0, 0.12, 0.0), drift_period=p(22, 60.0, 240.0, 120.0), drift_phase=p(23, 0.0, 2 * math.pi, 0.0),
        flicker=p(24, 0.01, 0.04, 0.0) if u[25] < 0.4 * v else 0.0, noise=p(26, 0.004, 0.035, 0.012),
        walkers=int(round(p(27, 0.5, 8.49, 4.0))), walker_height=p(28, 6.0, 10.0, 8.0),
        walker_speed=p(29, 0.6, 1.4, 1.0),
        shadow=(shadow_len * math.cos(shadow_angle), abs(shadow_len * math.sin(shadow_angle)), p(30, 0.0, 0.5, 0.3)),
    )


# -- the background ---------------------------------------------------------------------------------
def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` pixels, rescaled to unit standard deviation."""
    n = gaussian_filter(rng.normal(0, 1, shape), sigma, mode="wrap")
    return n / max(float(n.std()), 1e-8)


def _edge_distance(q: np.ndarray, size: float) -> np.ndarray:
    """Distance of ``q`` to the nearest multiple of ``size``."""
    f = np.mod(q, size)
    return np.minimum(f, size - f)


def _paving(scene: Scene, yy: np.ndarray, xx: np.ndarray, px: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative surface pattern (about 1) of the walkway; ``yy``, ``xx`` in units, ``px`` units a pixel."""
    p, a = scene.period, math.radians(scene.angle)
    pu, pv = xx * math.cos(a) + yy * math.sin(a), -xx * math.sin(a) + yy * math.cos(a)
    table = rng.normal(0, 1, (61, 67))
    if scene.kind == "tiles":
        ci, cj = np.floor(pu / p), np.floor(pv / p)
        d = np.minimum(_edge_distance(pu, p), _edge_distance(pv, p))
    elif scene.kind in ("bricks", "planks"):
        row = np.floor(pv / p)
        length = 2 * p if scene.kind == "bricks" else 4 * p
        shift = (np.mod(row, 2) * p if scene.kind == "bricks"
                 else rng.uniform(0, length, 256)[np.mod(row, 256).astype(int)])
        ci, cj = np.floor((pu + shift) / length), row
        d = np.minimum(_edge_distance(pu + shift, length), _edge_distance(pv, p))
    elif scene.kind == "cobbles":
        g = np.arange(-1, int(UNITS / p) + 2)
        grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        centres = (grid + rng.uniform(0.1, 0.9, grid.shape)) * p  # one stone per cell of a jittered grid
        dist = np.hypot(yy.reshape(-1, 1) - centres[:, 0], xx.reshape(-1, 1) - centres[:, 1])
        two = np.partition(dist, 1, axis=1)[:, :2]
        cell = dist.argmin(axis=1).reshape(yy.shape)
        ci, cj = cell // 67, cell % 67
        d = ((two[:, 1] - two[:, 0]) / 2).reshape(yy.shape)
    else:  # gravel: no cells, a grain at the period's scale
        ci = cj = np.zeros_like(yy)
        d = np.full_like(yy, np.inf)
    cells = table[np.mod(ci, 61).astype(int), np.mod(cj, 67).astype(int)]
    if scene.kind == "gravel":
        cells = smooth_noise(rng, yy.shape, p / 4 / px)
    joint = np.clip(1 - d / 0.7, 0, 1)
    grain = smooth_noise(rng, yy.shape, 0.5 / px)
    stains = smooth_noise(rng, yy.shape, 10 / px)
    return (1 + scene.shade * cells + 0.05 * stains) * (1 - scene.joint * joint) + scene.grain * grain


def draw_background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size, 3)`` reflectance: the paved walkway across the middle, a rougher border above and below."""
    px = UNITS / size
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) * px
    pave = np.array(scene.pave_rgb) * _paving(scene, yy, xx, px, rng)[..., None]
    rough = 0.6 * smooth_noise(rng, yy.shape, 0.8 / px) + 0.6 * smooth_noise(rng, yy.shape, 4 / px)
    border = np.array(scene.border_rgb) * (1 + 0.15 * rough)[..., None]
    off = np.abs(yy - scene.band_centre * UNITS) - scene.band_half * UNITS  # < 0 on the walkway
    inside = np.clip(0.5 - off / px, 0, 1)[..., None]
    kerb = np.exp(-((off - 0.3) / 0.6) ** 2)[..., None]
    return np.clip(inside * pave + (1 - inside) * border + 0.12 * kerb, 0.02, 1.0)


# -- objects ----------------------------------------------------------------------------------------
@dataclass
class Part:
    """An ellipse (``box``: a rectangle) of ``colour``, offset (dx, dy) from its object's centre, in units."""

    dx: float
    dy: float
    rx: float
    ry: float
    colour: tuple[float, float, float]
    box: bool = False
    checker: tuple[float, float, float] | None = None  # second colour of 2-unit squares fixed to the object


@dataclass
class Sprite:
    """An object: its parts, painted in order, and the shadow it casts (None: none)."""

    parts: list[Part]
    shadow: Part | None = None


def _coverage(part: Part, cx: float, cy: float, size: int) -> tuple[slice, slice, np.ndarray] | None:
    """Anti-aliased coverage (0..1) of ``part`` centred near (cx, cy) units, over its pixel box."""
    s = size / UNITS
    x, y, rx, ry = (cx + part.dx) * s, (cy + part.dy) * s, max(part.rx * s, 0.3), max(part.ry * s, 0.3)
    y0, y1 = max(int(math.floor(y - ry - 1)), 0), min(int(math.ceil(y + ry + 1)), size)
    x0, x1 = max(int(math.floor(x - rx - 1)), 0), min(int(math.ceil(x + rx + 1)), size)
    if y0 >= y1 or x0 >= x1:
        return None
    py, pxs = np.mgrid[y0:y1, x0:x1] + 0.5
    if part.box:
        alpha = np.clip(0.5 + rx - np.abs(pxs - x), 0, 1) * np.clip(0.5 + ry - np.abs(py - y), 0, 1)
    else:
        r = np.hypot((pxs - x) / rx, (py - y) / ry)
        alpha = np.clip(0.5 - (r - 1) * min(rx, ry), 0, 1)
    return slice(y0, y1), slice(x0, x1), alpha


def draw_shadow(frame: np.ndarray, sprite: Sprite, cx: float, cy: float, darkness: float,
                mask: np.ndarray | None = None) -> None:
    """Darken the ground under ``sprite``'s shadow by ``darkness``; with ``mask``, mark its pixels."""
    if sprite.shadow is None or darkness <= 0:
        return
    cov = _coverage(sprite.shadow, cx, cy, frame.shape[0])
    if cov is not None:
        ys, xs, alpha = cov
        frame[ys, xs] *= (1 - darkness * alpha)[..., None]
        if mask is not None:
            mask[ys, xs] |= alpha > MASK_ALPHA


def draw_sprite(frame: np.ndarray, sprite: Sprite, cx: float, cy: float, mask: np.ndarray | None = None) -> None:
    """Paint ``sprite``'s parts in order at (cx, cy) units; with ``mask``, mark the pixels it covers."""
    s = frame.shape[0] / UNITS
    for part in sprite.parts:
        cov = _coverage(part, cx, cy, frame.shape[0])
        if cov is None:
            continue
        ys, xs, alpha = cov
        colour = np.broadcast_to(np.array(part.colour), alpha.shape + (3,))
        if part.checker is not None:
            py, pxs = np.mgrid[ys, xs]
            odd = (np.floor((py / s - cy) / 2) + np.floor((pxs / s - cx) / 2)) % 2 == 1
            colour = np.where(odd[..., None], np.array(part.checker), colour)
        region = frame[ys, xs]
        region += alpha[..., None] * (colour - region)
        if mask is not None:
            mask[ys, xs] |= alpha > MASK_ALPHA


Colour = tuple[float, ...]


def person(h: float, phase: float, clothes: Colour, head: Colour, shadow: tuple[float, float, float],
           vertical: bool = False) -> Sprite:
    """A pedestrian seen from above at an angle: legs (swinging with ``phase``), body, head."""
    swing = 0.12 * h * math.sin(phase)
    legs = [Part(0.1 * h * side + (0 if vertical else swing * side), 0.36 * h + (swing * side if vertical else 0),
                 0.09 * h, 0.14 * h, tuple(0.6 * c for c in clothes)) for side in (-1, 1)]
    body = Part(0, 0.02 * h, 0.24 * h, 0.3 * h, tuple(clothes))
    top = Part(0, -0.36 * h, 0.15 * h, 0.15 * h, tuple(head))
    sh = Part(shadow[0] * h, 0.45 * h + shadow[1] * h, 0.25 * h + abs(shadow[0]) * h * 0.5,
              0.1 * h + shadow[1] * h * 0.5, (0, 0, 0))
    return Sprite(legs + [body, top], sh)
