"""One video of the ``scenes`` dataset: its scene, its walkers, at most one anomalous event, its camera.

Walkers walk left or right along the walkway at the scene's walking speed (each a little faster or
slower), drifting a little up or down, leaving across one side and coming back from the other. An
event is one of :data:`EVENTS`; its object may appear mid-scene, but it always leaves across the
frame's edge, so that the frames after the event hold nothing anomalous (an object vanishing
mid-scene would stay in a prediction model's input clip for the frames after it). Its pixel mask
is what it covers (its shadow included); a frame is anomalous when its mask holds a pixel.

Each video has its own random streams (scene, texture, walkers, event, camera noise), so drawing
the event or not changes nothing else: the frames differ only inside the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .scene_render import UNITS, Part, Scene, Sprite, draw_background, draw_scene, draw_shadow, draw_sprite, person

EVENTS = ("cyclist", "vehicle", "crossing", "thrown", "stranger")
LEAD, TAIL = 16, 12  # normal frames kept before and after an event, when the video is long enough
#: Car paints (reflectance): red, blue, white, silver, yellow, dark green.
PAINTS = np.array([[0.75, 0.12, 0.1], [0.15, 0.25, 0.7], [0.92, 0.92, 0.9], [0.7, 0.72, 0.75], [0.9, 0.75, 0.1],
                   [0.1, 0.35, 0.2]])


def clothing(rng: np.random.Generator) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A pedestrian's clothes (mostly muted, dark to light) and head (skin or hair) reflectances."""
    clothes = rng.uniform(0.06, 0.65) * rng.dirichlet(np.full(3, 6.0)) * 3
    head = np.array([0.62, 0.47, 0.36]) * rng.uniform(0.35, 1.2)
    return tuple(float(c) for c in np.clip(clothes, 0, 1)), tuple(float(c) for c in head)


class Walker:
    """A pedestrian of the scene's crowd."""

    def __init__(self, scene: Scene, rng: np.random.Generator):
        self.h = scene.walker_height * rng.uniform(0.9, 1.1)
        self.x = rng.uniform(-self.h, UNITS + self.h)
        lo, hi = self.band(scene)
        self.y = rng.uniform(lo, hi)
        self.vx = rng.choice([-1.0, 1.0]) * scene.walker_speed * rng.uniform(0.85, 1.15)
        self.vy = rng.normal(0, 0.06)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.clothes, self.head = clothing(rng)
        self.shadow = scene.shadow

    def band(self, scene: Scene) -> tuple[float, float]:
        """Range of the centre line, so that the walker stays on the walkway."""
        c, w = scene.band_centre * UNITS, scene.band_half * UNITS
        return c - w + 0.5 * self.h, c + w - 0.5 * self.h

    def sprite(self) -> Sprite:
        return person(self.h, self.phase, self.clothes, self.head, self.shadow)

    def step(self, scene: Scene) -> None:
        margin = self.h
        self.x = (self.x + self.vx + margin) % (UNITS + 2 * margin) - margin
        lo, hi = self.band(scene)
        self.y += self.vy
        if not lo <= self.y <= hi:
            self.vy, self.y = -self.vy, min(max(self.y, lo), hi)
        self.phase += abs(self.vx) * 2 * math.pi / (0.9 * self.h)


@dataclass
class Event:
    """An anomalous object: its sprite at each step of its path, and the frames it is on."""

    name: str
    sprite: Callable[[int], Sprite]
    path: np.ndarray          # (steps, 2) centre (x, y) in units
    first: int                # the step shown at the event's first frame
    start: int                # the event's first frame
    length: int               # its frames

    def at(self, t: int) -> tuple[Sprite, float, float] | None:
        if not self.start <= t < self.start + self.length:
            return None
        k = self.first + t - self.start
        return self.sprite(k), float(self.path[k, 0]), float(self.path[k, 1])


def _line(x0: float, y0: float, vx: float, vy: float, g: float = 0.0, steps: int = 400) -> np.ndarray:
    k = np.arange(steps, dtype=float)
    return np.stack([x0 + vx * k, y0 + vy * k + 0.5 * g * k ** 2], 1)


def _event_object(name: str, scene: Scene, rng: np.random.Generator):
    """``(sprite of step k, path)`` of event ``name``: paths start off-scene or mid-scene and end past an edge."""
    h, sh = scene.walker_height, scene.shadow
    c, w = scene.band_centre * UNITS, scene.band_half * UNITS
    d = float(rng.choice([-1.0, 1.0]))
    y = rng.uniform(c - w + 0.5 * h, c + w - 0.5 * h)
    side = 0.0 if d > 0 else UNITS  # the side it comes in from

    def enter(extent: float) -> float:
        return side - d * extent

    if name == "cyclist":  # a rider on a bicycle, three to five times walking speed
        rider = person(h * 0.85, 0.0, *clothing(rng), sh)
        bike = [Part(s * 0.38 * h, 0.3 * h, 0.2 * h, 0.2 * h, (0.08, 0.08, 0.08)) for s in (-1, 1)]
        bike.append(Part(0, 0.22 * h, 0.38 * h, 0.05 * h, tuple(rng.uniform(0.4, 0.9, 3)), box=True))
        shadow = Part(sh[0] * h, 0.5 * h + sh[1] * h, 0.6 * h, 0.12 * h, (0, 0, 0))
        sprite = Sprite(bike + rider.parts[2:], shadow)
        return (lambda k: sprite), _line(enter(0.7 * h), y, d * rng.uniform(3.5, 5.0), 0.0)
    if name == "vehicle":  # a car-sized box with windows and wheels
        length, height = rng.uniform(22, 30), rng.uniform(11, 15)
        paint = tuple(np.clip(PAINTS[rng.integers(len(PAINTS))] * rng.uniform(0.85, 1.1), 0, 1))
        parts = [Part(s * 0.32 * length, 0.45 * height, 0.1 * length, 0.12 * height, (0.05, 0.05, 0.05))
                 for s in (-1, 1)]
        parts += [Part(0, 0, length / 2, height / 2, paint, box=True),
                  Part(0.05 * d * length, -0.05 * height, 0.28 * length, 0.3 * height, (0.12, 0.14, 0.16), box=True)]
        shadow = Part(sh[0] * height, 0.35 * height + sh[1] * height, length / 2 + 1, 0.3 * height, (0, 0, 0))
        sprite = Sprite(parts, shadow)
        y = float(np.clip(c + rng.uniform(-0.3, 0.3) * w, height / 2, UNITS - height / 2))
        return (lambda k: sprite), _line(enter(length / 2 + 2), y, d * rng.uniform(1.8, 2.6), 0.0)
    if name == "crossing":  # a pedestrian walking across the walkway, from the top or the bottom edge
        clothes, head = clothing(rng)
        speed = rng.uniform(1.3, 1.8)
        x = rng.uniform(0.15, 0.85) * UNITS
        stride = 2 * math.pi * speed / (0.9 * h)
        y0 = -0.7 * h if d > 0 else UNITS + 0.7 * h
        return (lambda k: person(h, k * stride, clothes, head, sh, vertical=True)), _line(x, y0, 0.0, d * speed)
    if name == "thrown":  # a small bright ball thrown along an arc from the walkway
        r = rng.uniform(1.6, 2.2)
        colour = tuple(np.array([[0.95, 0.85, 0.2], [0.95, 0.2, 0.15], [0.97, 0.97, 0.97]])[rng.integers(3)])
        x0, g = rng.uniform(0.3, 0.7) * UNITS, 0.2
        vy0 = min(rng.uniform(1.2, 2.2), math.sqrt(2 * g * max(y - r - 2, 0.0)))  # its peak stays in the frame
        sprite = Sprite([Part(0, 0, r, r, colour)])
        return (lambda k: sprite), _line(x0, y, d * rng.uniform(3.0, 4.5), -vy0, g)
    if name == "stranger":  # a large checkered disc at walking speed: a shape and texture never seen
        r = rng.uniform(6.0, 9.0)
        bright, dark = tuple(rng.uniform(0.85, 1.0, 3)), tuple(rng.uniform(0.05, 0.3, 3))
        shadow = Part(sh[0] * r, r + sh[1] * r, r, 0.3 * r, (0, 0, 0))
        sprite = Sprite([Part(0, 0, r, r, bright, checker=dark)], shadow)
        return (lambda k: sprite), _line(enter(r + 1), y, d * rng.uniform(0.9, 1.3), 0.0)
    raise ValueError(f"event: expected one of {', '.join(EVENTS)}, got {name!r}")


def plan_event(name: str, scene: Scene, n: int, size: int, rng: np.random.Generator) -> Event:
    """Event ``name`` placed in a video of ``n`` frames: ``LEAD`` normal frames before it and ``TAIL``
    after it where there is room (a path too long for the room left starts mid-scene)."""
    sprite, path = _event_object(name, scene, rng)
    visible = []
    for k in range(len(path)):
        mask = np.zeros((size, size), bool)
        canvas = np.zeros((size, size, 3))
        draw_shadow(canvas, sprite(k), *path[k], 1.0, mask)
        draw_sprite(canvas, sprite(k), *path[k], mask)
        visible.append(mask.any())
        if not visible[-1] and any(visible):
            break
    shown = np.flatnonzero(visible)
    first, end = int(shown[0]), int(shown[-1]) + 1
    room = max(n - LEAD - TAIL, 1)
    if end - first > room:
        first = end - room
    length = end - first
    latest = max(n - TAIL - length, 0)
    start = int(rng.integers(min(LEAD, latest), latest + 1))
    return Event(name, sprite, path, first, start, min(length, n - start))


def at_another_time(scene: Scene, another_time: np.random.SeedSequence) -> tuple[Scene, list[np.random.Generator]]:
    """``scene`` with the phase of its light's drift drawn from ``another_time``, and the walkers', event's
    and camera's generators from it."""
    s_walkers, s_event, s_camera = (np.random.default_rng(s) for s in another_time.spawn(3))
    return replace(scene, drift_phase=float(s_camera.uniform(0.0, 2 * math.pi))), [s_walkers, s_event, s_camera]


def render_video(seq: np.random.SeedSequence, n: int, size: int, variety: float, event: str | None,
                 texture: np.random.SeedSequence, draw_event: bool = True,
                 another_time: np.random.SeedSequence | None = None):
    """``(frames (n, size, size, 3) uint8, masks (n, size, size) bool, scene, event)`` of one video.

    ``texture`` seeds the background when ``variety`` is 0 (one scene for every video); otherwise
    the video's own stream does. ``draw_event=False`` renders the same video without its event.
    ``another_time`` films the same scene at another time: the scene and its paving from ``seq``, the
    walkers, the event, the camera noise and the phase of the light's drift from ``another_time``.
    """
    s_scene, s_texture, s_walkers, s_event, s_camera = (np.random.default_rng(s) for s in seq.spawn(5))
    scene = draw_scene(s_scene, variety)
    if another_time is not None:
        scene, (s_walkers, s_event, s_camera) = at_another_time(scene, another_time)
    bg = draw_background(scene, size, np.random.default_rng(texture) if variety == 0 else s_texture)
    walkers = [Walker(scene, s_walkers) for _ in range(scene.walkers)]
    plan = plan_event(event, scene, n, size, s_event) if event else None
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    light = (1 + scene.gradient[0] * xx + scene.gradient[1] * yy)[..., None] * np.array(scene.cast)
    frames = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), bool)
    for t in range(n):
        frame = bg.copy()
        walkers.sort(key=lambda wk: wk.y)
        shown = plan.at(t) if plan is not None and draw_event else None
        for wk in walkers:
            draw_shadow(frame, wk.sprite(), wk.x, wk.y, scene.shadow[2])
        if shown is not None:
            draw_shadow(frame, shown[0], shown[1], shown[2], scene.shadow[2], masks[t])
        for wk in walkers:
            draw_sprite(frame, wk.sprite(), wk.x, wk.y)
            wk.step(scene)
        if shown is not None:
            draw_sprite(frame, *shown, masks[t])
        gain = 1 + scene.drift * math.sin(2 * math.pi * t / scene.drift_period + scene.drift_phase)
        gain *= 1 + scene.flicker * s_camera.standard_normal()
        seen = scene.brightness + scene.contrast * (frame * light * gain - 0.5)
        seen += scene.noise * s_camera.standard_normal(seen.shape)
        frames[t] = np.clip(np.rint(seen * 255), 0, 255).astype(np.uint8)
    return frames, masks, scene, plan
