"""``synthetic``: a small surveillance-like video dataset generated on the fly.

A fixed textured scene seen from above; normal videos show pedestrians (small dark
blobs) walking left or right at walking speed. Each test video contains one anomalous
event for a stretch of frames, one of:

- ``cyclist``: a pedestrian-sized object moving four times as fast;
- ``vehicle``: a large bright box crossing the scene;
- ``wrong_way``: a pedestrian walking vertically, across the normal flow;
- ``stranger``: a large checkered disc, a shape, brightness and texture never seen in training.

Frame labels and pixel masks come from where the anomalous object was drawn. Anomalous objects
leave the scene across an edge when their event ends (they may appear mid-scene), so the
frames after an event show nothing a model could call anomalous. Everything
is derived from ``seed``, so the same call gives the same frames on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .videos import VideoSet

NATIVE = 64  # frames are rendered at 64x64 and resized to the requested size
EVENTS = ("cyclist", "vehicle", "wrong_way", "stranger")


@dataclass(frozen=True)
class SyntheticSpec:
    train_videos: int = 8
    test_videos: int = 8
    frames_per_video: int = 60
    pedestrians: int = 3
    seed: int = 0


def _background(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:NATIVE, 0:NATIVE] / NATIVE
    base = 0.55 + 0.15 * np.sin(3 * x + 1.0) * np.cos(2 * y)
    texture = rng.normal(0, 0.04, (NATIVE // 4, NATIVE // 4))
    texture = np.kron(texture, np.ones((4, 4)))
    walkway = (np.abs(y - 0.5) < 0.3) * 0.08  # the band where people walk is lighter
    return np.clip(base + texture + walkway, 0, 1)


def _draw(frame: np.ndarray, cx: float, cy: float, h: int, w: int, value: float, mask: np.ndarray | None = None,
          round_shape: bool = False, checker: float | None = None) -> None:
    y0, x0 = int(round(cy - h / 2)), int(round(cx - w / 2))
    ys, xs = slice(max(y0, 0), min(y0 + h, NATIVE)), slice(max(x0, 0), min(x0 + w, NATIVE))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return
    region = np.ones((ys.stop - ys.start, xs.stop - xs.start), dtype=bool)
    if round_shape:
        yy, xx = np.mgrid[ys, xs]
        region = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1.0
    patch = np.full(region.shape, value)
    if checker is not None:  # 2-pixel squares of ``value`` and ``checker``, fixed to the object
        yy, xx = np.mgrid[ys, xs]
        patch[((yy - y0) // 2 + (xx - x0) // 2) % 2 == 1] = checker
    frame[ys, xs][region] = patch[region]
    if mask is not None:
        mask[ys, xs] |= region


def _wrap(pos: float, margin: float = 6.0) -> float:
    """Positions leaving one side of the scene re-enter from the other."""
    span = NATIVE + 2 * margin
    return (pos + margin) % span - margin


def _exit_path(direction: float, size: int, speed: float, steps_left: float) -> float:
    """Centre of an object of ``size`` moving at ``speed`` in ``direction`` (+1: towards higher
    coordinates) that is entirely past the scene's edge ``steps_left + 1`` steps from now."""
    exit_centre = NATIVE / 2 + direction * (NATIVE / 2 + size / 2 + 1)
    return exit_centre - direction * speed * (steps_left + 1)


class _Walker:
    def __init__(self, rng: np.random.Generator):
        self.x = rng.uniform(0, NATIVE)
        self.y = rng.uniform(0.3 * NATIVE, 0.7 * NATIVE)
        self.vx = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.2)
        self.shade = rng.uniform(0.1, 0.25)

    def step(self) -> None:
        self.x = _wrap(self.x + self.vx, 4.0)


def _render_video(rng: np.random.Generator, spec: SyntheticSpec, event: str | None):
    bg = _background(np.random.default_rng(spec.seed))  # one scene for the whole dataset
    walkers = [_Walker(rng) for _ in range(spec.pedestrians)]
    n = spec.frames_per_video
    frames = np.empty((n, NATIVE, NATIVE), dtype=np.float32)
    masks = np.zeros((n, NATIVE, NATIVE), dtype=bool)
    start = end = -1
    if event is not None:
        start = int(rng.integers(n // 5, n // 2))
        end = min(n, start + int(rng.integers(n // 3, n // 2)))
        direction = rng.choice([-1.0, 1.0])
        ey = rng.uniform(0.35 * NATIVE, 0.65 * NATIVE)
    for t in range(n):
        frame = bg.copy()
        for w in walkers:
            _draw(frame, w.x, w.y, 8, 4, w.shade)
            w.step()
        if start <= t < end:
            # The object may appear anywhere (or come in from off-scene) but it leaves the scene across
            # an edge by the event's end: an object vanishing mid-scene would make the next frames,
            # labelled normal, anomalous to any model that looks at the frames before them.
            left = end - 1 - t  # steps until its last frame
            if event == "cyclist":
                _draw(frame, _exit_path(direction, 5, 4.0, left), ey, 8, 5, 0.2, masks[t])
            elif event == "vehicle":
                _draw(frame, _exit_path(direction, 20, 1.5, left), ey, 12, 20, 0.95, masks[t])
            elif event == "wrong_way":
                _draw(frame, NATIVE / 2 + 10 * direction, _exit_path(1.0, 8, 1.2, left), 8, 4, 0.18, masks[t])
            elif event == "stranger":
                _draw(frame, _exit_path(direction, 14, 1.0, left), ey, 14, 14, 0.98, masks[t], round_shape=True,
                      checker=0.4)
        frames[t] = frame + rng.normal(0, 0.01, frame.shape)
    # A frame is anomalous exactly when the anomalous object is visible in it.
    labels = masks.reshape(n, -1).any(axis=1)
    return np.clip(frames, 0, 1), masks, labels.astype(np.int8)


def _resize(frames: np.ndarray, size_hw: tuple[int, int], resample: int) -> np.ndarray:
    if size_hw == (NATIVE, NATIVE):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((size_hw[1], size_hw[0]), resample)) for f in frames])


def make_synthetic(
    split: str,
    image_size: tuple[int, int] = (64, 64),
    channels: int = 3,
    mask_size: int = 64,
    spec: SyntheticSpec = SyntheticSpec(),
) -> VideoSet:
    """Generate the ``training`` or ``testing`` split (see the module docstring).

    >>> test = make_synthetic("testing", (32, 32), channels=1)
    >>> test.frames.shape, int(test.labels.sum()) > 0
    (torch.Size([480, 1, 32, 32]), True)
    """
    if split not in ("training", "testing"):
        raise ValueError(f"split: expected 'training' or 'testing', got {split!r}")
    rng = np.random.default_rng([spec.seed, 0 if split == "training" else 1])
    count = spec.train_videos if split == "training" else spec.test_videos
    all_frames, all_masks, all_labels = [], [], []
    for i in range(count):
        event = None if split == "training" else EVENTS[i % len(EVENTS)]
        f, m, lab = _render_video(rng, spec, event)
        all_frames.append(f)
        all_masks.append(m)
        all_labels.append(lab)
    frames = (np.concatenate(all_frames) * 255).round().astype(np.uint8)
    frames = _resize(frames, image_size, Image.BILINEAR)
    frames_t = torch.from_numpy(frames)[:, None].expand(-1, channels, -1, -1).contiguous()
    lengths = [spec.frames_per_video] * count
    names = [f"{i + 1:02d}" for i in range(count)]
    if split == "training":
        return VideoSet(frames_t, names, lengths, source="synthetic/training")
    h, w = image_size
    scale = min(1.0, mask_size / max(h, w))
    mask_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    masks = np.concatenate(all_masks).astype(np.uint8) * 255
    masks = _resize(masks, mask_hw, Image.BOX) > 0
    return VideoSet(frames_t, names, lengths, np.concatenate(all_labels), torch.from_numpy(masks),
                    source="synthetic/testing")


def write_synthetic(root: str | Path, fmt: str = "jpg", spec: SyntheticSpec = SyntheticSpec(),
                    fps: float = 25.0, masks: bool = True) -> Path:
    """Write ``synthetic`` to ``root`` in the standard layout, as image frames or video files.

    ``fmt`` is an image ending (``jpg``, ``png``: ``ROOT/{training,testing}/frames/NN/000.jpg``)
    or a video ending (``avi``, ``mp4``, ``mkv``, ``mov``, ``webm``:
    ``ROOT/{training,testing}/videos/NN.avi``). Frame labels go to ``ROOT/labels.npy`` and,
    with ``masks``, pixel masks to ``ROOT/testing/masks/NN/000.png``. Returns ``root``.
    """
    from .video_files import VIDEO_SUFFIXES, write_video

    root = Path(root)
    video = f".{fmt}" in VIDEO_SUFFIXES
    for split in ("training", "testing"):
        data = make_synthetic(split, (NATIVE, NATIVE), channels=3, mask_size=NATIVE, spec=spec)
        for i, name in enumerate(data.names):
            frames = data.video(i).frames.permute(0, 2, 3, 1).numpy()
            if video:
                write_video(root / split / "videos" / f"{name}.{fmt}", frames, fps)
            else:
                folder = root / split / "frames" / name
                folder.mkdir(parents=True, exist_ok=True)
                for t, frame in enumerate(frames):
                    Image.fromarray(frame).save(folder / f"{t:03d}.{fmt}", quality=95)
            if split == "testing" and masks:
                folder = root / "testing" / "masks" / name
                folder.mkdir(parents=True, exist_ok=True)
                for t, mask in enumerate(data.video(i).masks.numpy()):
                    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{t:03d}.png")
        if split == "testing":
            np.save(root / "labels.npy", data.labels.astype(np.int8))
    return root
