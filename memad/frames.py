"""The one door for frames: any frame source in, the model's input out, and back.

Every frame memad reads passes here: image files and decoded video frames (:func:`from_image`),
frames handed to ``Detector.stream``, ``score_video`` and ``memad detect`` (:class:`FrameReader`,
:func:`as_video`), and clips turned into the model's input (:func:`to_float`, :func:`clip_input`).
One set of rules for every source:

- **dtype**: ``uint8`` as is; ``uint16`` (and 16-bit images) scaled to 8 bits, ``round(x / 257)``;
  other integer types when their values lie in 0..255; floats are read as ``[0, 1]`` (the
  convention of Pillow, scikit-image, OpenCV and torchvision's ``ToTensor``), or as the model's
  own ``[-1, 1]`` when ``float_range=(-1, 1)`` says so; ``bool`` is refused (a mask, not a frame).
- **layout**: ``H x W`` (grey) or ``H x W x C`` for arrays and images, ``C x H x W`` for tensors,
  with C of 1, 3 or 4 (an alpha channel is dropped).
- **channels**: converted as Pillow converts them (RGB to grey: ITU-R 601-2 luma; grey to RGB:
  repeated), so an array and an image file of the same picture give the same input.
- **size**: resized bilinearly (Pillow) to ``data.image_size``, with one warning per source; a
  source whose frame size changes part-way warns again, naming the frame.
- NaN or infinite values, an empty frame, or an object that is not an image: an error naming
  the frame's index and its source.

>>> reader = FrameReader(channels=1, size_hw=(2, 2), source="demo")
>>> reader(np.full((2, 2), 0.5), 0).tolist()  # a float frame in [0, 1]
[[[128, 128], [128, 128]]]
>>> to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
[-1.0, 1.0]
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import DataError

__all__ = ["FrameReader", "from_image", "as_video", "to_uint8", "to_float", "to_display", "clip_input",
           "normalise_clips", "FloatRange", "UNIT_RANGE", "MODEL_RANGE"]

FloatRange = tuple[float, float]
#: The range float frames are read in unless told otherwise.
UNIT_RANGE: FloatRange = (0.0, 1.0)
#: The model's own range (what :func:`to_float` makes of uint8 frames).
MODEL_RANGE: FloatRange = (-1.0, 1.0)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def from_image(img: Image.Image, size_hw: tuple[int, int], channels: int) -> np.ndarray:
    """A Pillow image as ``(C, H, W)`` uint8: 16-bit modes scaled to 8 bits, converted to grey (``L``) or
    ``RGB``, resized bilinearly when its size differs.

    >>> from_image(Image.new("I;16", (4, 2), 65535), (2, 4), 1).max()
    np.uint8(255)
    """
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion of 16-bit images to L clips every value above 255 to white.
        wide = np.asarray(img, dtype=np.int64)
        img = Image.fromarray(_scale_16bit(wide), "L")
    elif img.mode == "F":
        img = Image.fromarray(_float_to_uint8(np.asarray(img, dtype=np.float64), UNIT_RANGE, "image"), "L")
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size_hw[1], size_hw[0]):
        img = img.resize((size_hw[1], size_hw[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, float_range: FloatRange, what: str) -> np.ndarray:
    lo, hi = float_range
    vmin, vmax = float(values.min()), float(values.max())
    if vmin < lo - 1e-3 or vmax > hi + 1e-3:
        other = "pass float_range=(-1, 1) for the model's range" if float_range == UNIT_RANGE else \
            "uint8 frames hold 0..255"
        raise DataError(f"{what}: float frames are read in [{lo:g}, {hi:g}], got values from {vmin:g} to {vmax:g} "
                        f"({other})")
    return np.rint((np.clip(values, lo, hi) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def to_uint8(values: np.ndarray | Tensor, what: str = "frames", float_range: FloatRange = UNIT_RANGE,
             first_frame: int = 0) -> np.ndarray:
    """Pixel values of any supported dtype as uint8 (see the module docstring for the rules).

    ``values`` is one frame or a stack of frames (frames along the first axis when it has 4
    dimensions); a NaN names the frame it is in, counted from ``first_frame``.

    >>> to_uint8(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[0, 255]]
    """
    arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        raise DataError(f"{what}: bool frames (a mask?) are not images; expected uint8, uint16 or float pixel values")
    if kind in "iu":
        if arr.dtype == np.uint16:
            return _scale_16bit(arr)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{what}: {arr.dtype} frames must hold 8-bit values 0..255, got {arr.min()} to "
                            f"{arr.max()} (pass uint16 for 16-bit images)")
        return arr.astype(np.uint8)
    if kind != "f":
        raise DataError(f"{what}: expected uint8, uint16 or float pixel values, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        # A stack names the frame; a single frame is already named by ``what``.
        where = (f" (first in frame {first_frame + int(np.argmax(bad.reshape(bad.shape[0], -1).any(1)))})"
                 if arr.ndim == 4 else "")
        raise DataError(f"{what}: {int(bad.sum())} values are NaN or infinite{where}")
    return _float_to_uint8(arr.astype(np.float64, copy=False), float_range, what)


class FrameReader:
    """Frames of one source, one at a time, as the model's uint8 ``(C, H, W)``.

    Holds what the rules need across frames: whether the source was warned about a resize,
    and the frame size it started with (a change part-way warns once more).

    Args:
        channels: the model's channels (``data.channels``).
        size_hw: the model's frame size (``data.image_size`` as height, width).
        source: what the frames come from, for messages.
        float_range: the range float frames are given in (``(0, 1)`` or ``(-1, 1)``).
    """

    def __init__(self, channels: int, size_hw: tuple[int, int], *, source: str = "frames",
                 float_range: FloatRange = UNIT_RANGE):
        if tuple(float_range) not in (UNIT_RANGE, MODEL_RANGE):
            raise DataError(f"float_range: expected (0, 1) or (-1, 1), got {float_range!r}")
        self.channels, self.size_hw, self.source = channels, (int(size_hw[0]), int(size_hw[1])), source
        self.float_range: FloatRange = (float(float_range[0]), float(float_range[1]))
        self._first_hw: tuple[int, int] | None = None
        self._warned_resize = self._warned_change = False

    def __call__(self, frame: Any, index: int) -> Tensor:
        what = f"{self.source} frame {index}"
        if isinstance(frame, Image.Image):
            self._note_size((frame.size[1], frame.size[0]), index)
            return torch.from_numpy(np.array(from_image(frame, self.size_hw, self.channels)))
        hwc = self._as_hwc(frame, what)
        self._note_size(hwc.shape[:2], index)
        hwc = to_uint8(hwc, what, self.float_range)
        c = hwc.shape[2]
        if c == 4:
            hwc, c = hwc[:, :, :3], 3
        if c == self.channels and hwc.shape[:2] == self.size_hw:
            return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
        img = Image.fromarray(hwc[:, :, 0], "L") if c == 1 else Image.fromarray(np.ascontiguousarray(hwc), "RGB")
        return torch.from_numpy(np.array(from_image(img, self.size_hw, self.channels)))

    def _as_hwc(self, frame: Any, what: str) -> np.ndarray:
        if isinstance(frame, Tensor):
            t = frame.detach().cpu()
            if t.dim() == 2:
                t = t[None]
            if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
                raise DataError(f"{what}: expected a (C, H, W) tensor with C of 1, 3 or 4, got shape "
                                f"{tuple(frame.shape)}")
            arr = t.permute(1, 2, 0).numpy()
        elif isinstance(frame, np.ndarray):
            arr = frame[:, :, None] if frame.ndim == 2 else frame
            if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
                raise DataError(f"{what}: expected an H x W or H x W x C array with C of 1, 3 or 4, got shape "
                                f"{frame.shape}")
        else:
            raise DataError(f"{what}: expected an image (numpy array, torch tensor or PIL image), got "
                            f"{type(frame).__name__}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise DataError(f"{what}: an empty frame ({arr.shape[0]}x{arr.shape[1]} pixels)")
        return arr

    def _note_size(self, hw: Sequence[int], index: int) -> None:
        hw = (int(hw[0]), int(hw[1]))
        if self._first_hw is None:
            self._first_hw = hw
            if hw != self.size_hw and not self._warned_resize:
                self._warned_resize = True
                warnings.warn(f"{self.source}: frames are {hw[0]}x{hw[1]} (height x width); resizing them to the "
                              f"model's {self.size_hw[0]}x{self.size_hw[1]} (data.image_size)", stacklevel=4)
        elif hw != self._first_hw and not self._warned_change:
            self._warned_change = True
            warnings.warn(f"{self.source}: frame {index} is {hw[0]}x{hw[1]}, the frames before it "
                          f"{self._first_hw[0]}x{self._first_hw[1]}; every frame is resized to "
                          f"{self.size_hw[0]}x{self.size_hw[1]}", stacklevel=4)


def as_video(frames: Tensor | np.ndarray | Sequence[Any], channels: int, size_hw: tuple[int, int], *,
             source: str = "frames", float_range: FloatRange = UNIT_RANGE) -> Tensor:
    """A whole video as uint8 ``(T, C, H, W)`` of the model's channels and size.

    ``frames`` is a ``(T, C, H, W)`` tensor or array, a ``(T, H, W, C)`` / ``(T, H, W)`` array, or a
    sequence of frames of any kind :class:`FrameReader` takes. A stack already of the model's
    channels and size only has its dtype converted. A 4-d array is read as ``(T, C, H, W)``
    when its second axis has the model's channels and its last does not, else as ``(T, H, W, C)``.
    """
    if isinstance(frames, (Tensor, np.ndarray)):
        arr = frames.detach().cpu().numpy() if isinstance(frames, Tensor) else frames
        if arr.ndim == 4 and tuple(arr.shape[1:]) == (channels, *size_hw):
            return torch.from_numpy(np.ascontiguousarray(to_uint8(arr, source, float_range)))
        if arr.ndim == 4 and (isinstance(frames, Tensor) or (arr.shape[1] == channels and arr.shape[3] != channels)):
            frames = [torch.from_numpy(np.ascontiguousarray(f)) for f in arr]  # (T, C, H, W): tensors per frame
        elif arr.ndim in (3, 4):
            frames = list(arr)  # (T, H, W[, C]) arrays: frame by frame
        else:
            raise DataError(f"{source}: expected frames (T, C, H, W) or (T, H, W[, C]), got shape {arr.shape}")
    reader = FrameReader(channels, size_hw, source=source, float_range=float_range)
    out = [reader(f, i) for i, f in enumerate(frames)]
    if not out:
        raise DataError(f"{source}: no frames")
    return torch.stack(out)


def to_float(frames: Tensor) -> Tensor:
    """uint8 frames as float in [-1, 1] (``x / 127.5 - 1``, as the official MNAD code)."""
    return frames.float().div_(127.5).sub_(1.0)


def to_display(frame: Tensor | np.ndarray) -> np.ndarray:
    """A uint8 ``(C, H, W)`` frame (or float in [-1, 1]) as an ``H x W x 3`` uint8 array, for pictures."""
    t = torch.as_tensor(frame)
    if t.dtype != torch.uint8:
        t = ((t.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    hwc = t.permute(1, 2, 0).cpu().numpy()
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


#: The spread (standard deviation) a clip is scaled to by ``normalise="clip"``.
CLIP_SPREAD = 0.35


def normalise_clips(clips: Tensor, frames: int) -> Tensor:
    """Float clips ``(B, L, C, H, W)`` shifted and scaled, per clip and channel, so that their first ``frames``
    frames (the input) have mean 0 and spread :data:`CLIP_SPREAD`, then clipped to [-1, 1]: a gain and an
    offset of the light (a camera's level and contrast) are gone before the network sees the clip.

    >>> clip = torch.rand(1, 5, 1, 8, 8) * 2 - 1
    >>> torch.allclose(normalise_clips(clip, 4), normalise_clips(0.5 * clip + 0.2, 4), atol=1e-5)
    True
    """
    # The statistics in float64, rounded once to the clip's type: every backend (PyTorch, an ONNX or
    # TorchScript export) then feeds the network the same values, where float32 sums in another order
    # would differ by a rounding that the network amplifies.
    inputs = clips[:, :frames].double()
    mean = inputs.mean(dim=(1, 3, 4), keepdim=True)
    spread = inputs.std(dim=(1, 3, 4), keepdim=True).clamp_min(1e-3)  # a flat clip stays flat, not noise
    scale = (CLIP_SPREAD / spread).to(clips.dtype)
    return ((clips - mean.to(clips.dtype)) * scale).clamp(-1.0, 1.0)


def clip_input(clips: Tensor, frames: int, task: str, input_mode: str = "frames",
               normalise: str = "none") -> tuple[Tensor, Tensor]:
    """Float clips ``(B, L, C, H, W)`` in [-1, 1] as the model's input ``(B, frames*C, H, W)`` and its target.

    ``normalise="clip"`` first scales each clip by its input frames' statistics
    (:func:`normalise_clips`); the target frame is scaled with them. ``input_mode="differences"``
    then takes the differences of consecutive frames, ``(f[t] - f[t-1]) / 2`` (still in [-1, 1]).
    The target is the frame after the inputs for ``task="prediction"``, the input itself for
    reconstruction.

    >>> x, y = clip_input(torch.zeros(2, 5, 3, 8, 8), frames=4, task="prediction")
    >>> tuple(x.shape), tuple(y.shape)
    ((2, 12, 8, 8), (2, 3, 8, 8))
    """
    if normalise == "clip":
        clips = normalise_clips(clips, frames + (input_mode == "differences"))
    if input_mode == "differences":
        clips = (clips[:, 1:] - clips[:, :-1]) * 0.5
    b, _, c, h, w = clips.shape
    x = clips[:, :frames].reshape(b, frames * c, h, w)
    y = clips[:, frames] if task == "prediction" else x
    return x, y
