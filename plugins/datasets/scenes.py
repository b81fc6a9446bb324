"""``scenes``: generated walkway videos whose scene changes from video to video, as cameras differ.

Each video draws its own scene (:mod:`.scene_render`): paving (tiles, bricks, planks, cobbles or
gravel, of its own scale, orientation and joint contrast), the border's ground, brightness,
contrast, a colour cast, an illumination gradient and slow drift, camera noise (and, in some
videos, flicker), crowd size, walkers' size and walking speed. Training videos are normal; test
videos hold one event each (:data:`.scene_video.EVENTS`: a fast cyclist, a vehicle, a pedestrian
crossing the walkway, a thrown ball, a checkered "stranger"), except the last ``normal`` ones,
which are fully normal. Test scenes are new draws, never a training video's scene; with ``camera=k`` the
training videos are test video ``k``'s scene at other times instead (that camera's own normal footage).

Spec: ``scenes``, ``scenes:SEED`` or ``scenes:key=value,...`` with the keys of :class:`ScenesSpec`
(``scenes:seed=3,variety=0``). ``variety=0`` gives every video the same scene (the control).
Frames are rendered at ``size`` pixels (RGB) and converted and resized as frame folders are
(Pillow: grey, bilinear); masks are box-shrunk to ``data.pixel_eval_size``, keeping any cell
holding an anomalous pixel. Everything follows from the seed: the same spec gives the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from PIL import Image

from memad.data import VideoSet
from memad.errors import DataError, unknown_name_message

from .scene_render import draw_scene
from .scene_video import EVENTS, at_another_time, render_video

SPLITS = ("training", "testing")


@dataclass(frozen=True)
class ScenesSpec:
    """Options of the ``scenes`` dataset.

    Attributes:
        seed: everything is derived from it.
        train: normal training videos.
        test: test videos.
        normal: how many of the test videos (the last ones) hold no event.
        frames: frames per training video.
        test_frames: frames per test video.
        size: frames are rendered at ``size`` x ``size`` pixels, then resized to ``data.image_size``.
        variety: how far scenes differ between videos, 0 (one scene for all) to 1.
        camera: 0, or ``k``: the training videos are test video ``k``'s scene filmed at other times (other
            walkers, camera noise and phase of the light's drift; no event): that camera's own normal
            footage, to calibrate on (``memad calibrate CHECKPOINT --data scenes:camera=k``).
    """

    seed: int = 0
    train: int = 8
    test: int = 6
    normal: int = 1
    frames: int = 60
    test_frames: int = 80
    size: int = 64
    variety: float = 1.0
    camera: int = 0

    def __post_init__(self) -> None:
        for name, lo, hi in (("train", 1, 1000), ("test", 1, 1000), ("normal", 0, 1000), ("frames", 1, 10000),
                             ("test_frames", 40, 10000), ("size", 32, 512), ("seed", 0, 2 ** 63 - 1)):
            if not lo <= getattr(self, name) <= hi:
                raise DataError(f"dataset 'scenes': option {name}={getattr(self, name)}: expected an integer "
                                f"from {lo} to {hi}")
        if not 0.0 <= self.variety <= 1.0:
            raise DataError(f"dataset 'scenes': option variety={self.variety}: expected a number from 0 to 1")
        if not 0 <= self.camera <= self.test:
            raise DataError(f"dataset 'scenes': option camera={self.camera}: expected 0 (training scenes of their "
                            f"own) or a test video from 1 to test={self.test}")
        if self.normal > self.test:
            raise DataError(f"dataset 'scenes': option normal={self.normal}: expected at most test={self.test} "
                            f"(normal test videos are some of the test videos)")


def parse_spec(arg: str | None) -> ScenesSpec:
    """``None``/``""`` (the defaults), ``"SEED"`` or ``"key=value,..."`` as a :class:`ScenesSpec`.

    >>> parse_spec("3").seed, parse_spec("train=4,variety=0.5").variety
    (3, 0.5)
    """
    if not arg:
        return ScenesSpec()
    if arg.strip().isdigit():
        return ScenesSpec(seed=int(arg))
    types = {f.name: f.type for f in fields(ScenesSpec)}
    given: dict[str, object] = {}
    for item in arg.split(","):
        key, eq, text = (s.strip() for s in item.partition("="))
        if not eq or not key:
            raise DataError(f"dataset 'scenes': {item.strip()!r} is not key=value; expected scenes, scenes:SEED or "
                            f"scenes:key=value,... with keys {', '.join(types)}")
        if key not in types:
            raise DataError(f"dataset 'scenes': {unknown_name_message('option', key, types)}")
        if key in given:
            raise DataError(f"dataset 'scenes': option {key!r} given twice")
        try:
            given[key] = float(text) if types[key] == "float" else int(text)
        except ValueError:
            kind = "a number from 0 to 1" if types[key] == "float" else "an integer"
            raise DataError(f"dataset 'scenes': option {key}={text!r}: expected {kind}") from None
    return replace(ScenesSpec(), **given)


def _video_seed(spec: ScenesSpec, split: str, i: int) -> np.random.SeedSequence:
    """Video ``i``'s seed; the scene's (test video ``camera``'s) for a camera's own training footage."""
    if split == "training" and spec.camera:
        return np.random.SeedSequence([spec.seed, SPLITS.index("testing"), spec.camera - 1])
    return np.random.SeedSequence([spec.seed, SPLITS.index(split), i])


def _another_time(spec: ScenesSpec, split: str, i: int) -> np.random.SeedSequence | None:
    """The seed of video ``i``'s walkers, noise and light phase when it films another video's scene."""
    if split != "training" or not spec.camera:
        return None
    return np.random.SeedSequence([spec.seed, len(SPLITS) + 1, spec.camera, i])


def video_events(spec: ScenesSpec, split: str) -> list[str | None]:
    """The event of each video of ``split`` (None: a normal video)."""
    if split == "training":
        return [None] * spec.train
    with_event = spec.test - spec.normal
    return [EVENTS[i % len(EVENTS)] if i < with_event else None for i in range(spec.test)]


def scene_table(spec: ScenesSpec, split: str) -> list[dict[str, object]]:
    """Per video of ``split``: its scene's parameters and its event (without rendering a frame)."""
    out = []
    for i, event in enumerate(video_events(spec, split)):
        scene = draw_scene(np.random.default_rng(_video_seed(spec, split, i).spawn(5)[0]), spec.variety)
        if (another_time := _another_time(spec, split, i)) is not None:
            scene, _ = at_another_time(scene, another_time)
        out.append({"video": f"{i + 1:02d}", "event": event, **scene.describe()})
    return out


def render_split(spec: ScenesSpec, split: str, draw_events: bool = True):
    """``(frames (N, size, size, 3) uint8, masks (N, size, size) bool, lengths, events)`` at the native size."""
    if split not in SPLITS:
        raise DataError(f"dataset 'scenes': split: expected 'training' or 'testing', got {split!r}")
    n = spec.frames if split == "training" else spec.test_frames
    texture = np.random.SeedSequence([spec.seed, len(SPLITS)])
    frames, masks, events = [], [], video_events(spec, split)
    for i, event in enumerate(events):
        f, m, _, _ = render_video(_video_seed(spec, split, i), n, spec.size, spec.variety, event, texture,
                                  draw_event=draw_events, another_time=_another_time(spec, split, i))
        frames.append(f)
        masks.append(m)
    return np.concatenate(frames), np.concatenate(masks), [n] * len(events), events


def _resize(images: np.ndarray, size_hw: tuple[int, int], resample: int, mode: str | None = None) -> np.ndarray:
    """Each image converted to ``mode`` (Pillow's conversion, as frame folders are read), then resized."""
    out = []
    for x in images:
        image = Image.fromarray(x)
        image = image.convert(mode) if mode else image
        if image.size != (size_hw[1], size_hw[0]):
            image = image.resize((size_hw[1], size_hw[0]), resample)
        out.append(np.asarray(image))
    return np.stack(out)


def make_scenes(split: str, image_size: tuple[int, int] = (64, 64), channels: int = 3, mask_size: int = 64,
                spec: ScenesSpec = ScenesSpec()) -> VideoSet:
    """The ``training`` or ``testing`` split (see the module docstring).

    >>> test = make_scenes("testing", (32, 32), channels=1)
    >>> test.frames.shape, test.lengths, int(test.labels[-80:].sum())
    (torch.Size([480, 1, 32, 32]), [80, 80, 80, 80, 80, 80], 0)
    """
    if channels not in (1, 3):
        raise DataError(f"dataset 'scenes': channels: expected 1 or 3, got {channels}")
    frames, masks, lengths, _ = render_split(spec, split)
    image_size = (int(image_size[0]), int(image_size[1]))
    out = _resize(frames, image_size, Image.BILINEAR, "L" if channels == 1 else None)
    out_t = torch.from_numpy(out[:, None] if channels == 1 else out.transpose(0, 3, 1, 2).copy()).contiguous()
    names = [f"{i + 1:02d}" for i in range(len(lengths))]
    if split == "training":
        return VideoSet(out_t, names, lengths, source="scenes/training")
    h, w = image_size
    scale = min(1.0, mask_size / max(h, w))
    mask_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = _resize(masks.astype(np.uint8) * 255, mask_hw, Image.BOX) > 0
    labels = masks.reshape(len(masks), -1).any(axis=1).astype(np.int8)
    return VideoSet(out_t, names, lengths, labels, torch.from_numpy(small), source="scenes/testing")


def scenes(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """Walkway videos whose scene differs from video to video: ``scenes``, ``scenes:SEED``, ``scenes:key=value,...``."""
    spec = parse_spec(arg)
    if labels is not None:
        raise DataError(f"dataset 'scenes' has its own labels (from its masks), cannot use the label file {labels}")
    return make_scenes(split, tuple(image_size), channels, mask_size, spec)
