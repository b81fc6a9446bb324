"""Video files, stream URLs and cameras, decoded with PyAV (FFmpeg's libraries, bundled in its wheel).

Frames come out in presentation order, every one of them (the count is what was decoded,
not what the container claims), converted and resized exactly as image frames are
(the frame door, :func:`memad.frames.from_image`: Pillow's ``L``/``RGB`` conversion, then a
bilinear resize), so a video and a folder of its frames as JPEGs give near-identical input.

>>> import tempfile, numpy as np
>>> path = Path(tempfile.mkdtemp()) / "clip.avi"
>>> _ = write_video(path, np.zeros((12, 48, 64, 3), np.uint8), fps=25)
>>> frames, fps = decode_video(path, (32, 32), channels=1)
>>> frames.shape, fps
((12, 1, 32, 32), 25.0)
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from ..errors import DataError
from ..frames import from_image

__all__ = ["VIDEO_SUFFIXES", "is_video_file", "VideoStream", "open_video", "decode_video", "VideoWriter", "write_video"]

#: File endings read as videos.
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")
#: Encoders :func:`write_video` picks by file ending (all in PyAV's wheel).
_ENCODERS = {".avi": ("mpeg4", {}), ".mp4": ("libx264", {"crf": "17"}), ".mkv": ("libx264", {"crf": "17"}),
             ".mov": ("libx264", {"crf": "17"}), ".webm": ("libvpx-vp9", {"crf": "20", "b": "0"})}
#: Container formats by ending: the temporary name a file is written under ends in the same.
_MUXERS = {".avi": "avi", ".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}


def is_video_file(path: str | Path) -> bool:
    """True for an existing file ending in one of :data:`VIDEO_SUFFIXES`."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()


def _av():
    try:
        import av
    except ImportError as exc:  # declared in pyproject.toml; only a broken install gets here
        raise DataError(f"reading video files needs PyAV (pip install av): {exc}") from exc
    return av


def _camera(index: int) -> tuple[str, str]:
    """FFmpeg's input device and name for camera ``index`` on this platform."""
    if sys.platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if sys.platform == "darwin":
        return str(index), "avfoundation"
    return f"video={index}", "dshow"


class VideoStream:
    """The frames of a video file, a stream URL (``rtsp://``, ``http://``...) or a camera (an int).

    Iterate to get frames one at a time as ``(H, W, C)`` uint8 arrays, converted to
    ``channels`` (1 or 3) and resized to ``size_hw`` when given. Nothing is read ahead: a
    live source is consumed as it arrives. Use as a context manager (or call :meth:`close`).

    Attributes:
        fps: frames per second the stream declares (None when it declares none).
        width, height: the native frame size.
        frame_count: the count the container declares before decoding (None when it does
            not say); approximate for some files: count what you decode.
    """

    def __init__(self, source: str | Path | int, *, size_hw: tuple[int, int] | None = None, channels: int = 3,
                 options: dict[str, str] | None = None, timeout: float | None = None):
        av = _av()
        self.source, self.size_hw, self.channels, self.timeout = source, size_hw, channels, timeout
        if isinstance(source, int):
            name, fmt = _camera(source)
        else:
            name, fmt = str(source), None
        started = time.monotonic()
        try:
            # (open, read): FFmpeg gives up on an open, and on any read, after this many seconds, however
            # slowly a server trickles bytes (its interrupt callback counts the whole call).
            self._container = av.open(name, format=fmt, options=options or {},
                                      timeout=None if timeout is None else (timeout, timeout))
        except FileNotFoundError as exc:
            if isinstance(source, int):
                raise DataError(f"camera {source} ({name}): no such camera; expected a connected camera "
                                f"(its index: 0 for the first)") from exc
            raise DataError(f"{source}: video file not found") from exc
        except (av.FFmpegError, OSError, ValueError) as exc:
            if _timed_out(exc, started, timeout):
                raise DataError(f"{source}: no video within {timeout:g} s (--timeout): the source did not answer, or "
                                f"sent too little to open") from exc
            raise DataError(f"{source}: cannot open as a video ({exc}); expected a video file, stream URL or camera "
                            f"that FFmpeg can read ({', '.join(VIDEO_SUFFIXES)})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise DataError(f"{source}: cannot open as a video: FFmpeg finds no video stream inside "
                            f"({len(self._container.streams)} other streams); expected a video file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame and slice threads: decoding is otherwise single-threaded
        ctx = self._stream.codec_context
        self.width, self.height = int(ctx.width), int(ctx.height)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self.frame_count: int | None = int(self._stream.frames) or None

    def __iter__(self) -> Iterator[np.ndarray]:
        av = _av()
        from av.video.reformatter import VideoReformatter

        # One reformatter for the whole stream: frame.to_ndarray builds a new colour converter
        # per frame, which made decoding 3-4x slower.
        rgb24 = VideoReformatter()
        index = 0
        changed = False
        try:
            for frame in self._container.decode(self._stream):
                if not changed and (frame.width, frame.height) != (self.width, self.height):
                    changed = True  # a stream may switch resolution (adaptive streams, edited files): say so once
                    warnings.warn(f"{self.source}: frame {index} is {frame.height}x{frame.width} (height x width), "
                                  f"the frames before it {self.height}x{self.width}; every frame is resized to "
                                  f"{'x'.join(map(str, self.size_hw or (self.height, self.width)))}", stacklevel=2)
                rgb = rgb24.reformat(frame, format="rgb24").to_ndarray()
                if self.size_hw is None and self.channels == 3:
                    yield rgb
                else:
                    size = self.size_hw or (self.height, self.width)
                    out = from_image(Image.fromarray(rgb, "RGB"), size, self.channels)
                    yield out.transpose(1, 2, 0)
                index += 1
        except av.FFmpegError as exc:
            if _timed_out(exc, None, self.timeout):
                raise DataError(f"{self.source}: no frame for {self.timeout:g} s after frame {index} (--timeout): the "
                                f"stream stalled") from exc
            raise DataError(f"{self.source}: cannot decode frame {index} ({exc}); the file is damaged or not a "
                            f"video FFmpeg can decode") from exc
        if self.frame_count and index < self.frame_count:
            # Not an error: some recorders write wrong counts. A cut-off download is the usual cause.
            warnings.warn(f"{self.source}: decoded {index} frames, but the file declares {self.frame_count}; "
                          f"it may be truncated", stacklevel=2)

    def chunks(self, size: int = 64) -> Iterator[np.ndarray]:
        """Frames in ``(k, C, H, W)`` blocks of at most ``size`` (the last one shorter)."""
        block: list[np.ndarray] = []
        for frame in self:
            block.append(frame.transpose(2, 0, 1))
            if len(block) == size:
                yield np.stack(block)
                block = []
        if block:
            yield np.stack(block)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(source: str | Path | int, *, size_hw: tuple[int, int] | None = None, channels: int = 3,
               options: dict[str, str] | None = None, timeout: float | None = None) -> VideoStream:
    """A :class:`VideoStream` over ``source``: a video file, a stream URL or a camera index.

    ``options`` go to FFmpeg's demuxer (e.g. ``{"rtsp_transport": "tcp"}``); ``timeout`` (seconds)
    bounds the open and every read.
    """
    return VideoStream(source, size_hw=size_hw, channels=channels, options=options, timeout=timeout)


def _timed_out(exc: BaseException, started: float | None, timeout: float | None) -> bool:
    """Whether FFmpeg gave up because ``timeout`` ran out (its interrupt: "Immediate exit requested"), or the
    open took the whole timeout and failed (a silent server can end as "Invalid data found")."""
    if timeout is None:
        return False
    if "Immediate exit" in str(exc) or isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
        return True
    return started is not None and time.monotonic() - started >= 0.9 * timeout


def decode_video(path: str | Path, size_hw: tuple[int, int] | None = None, channels: int = 3) \
        -> tuple[np.ndarray, float | None]:
    """All frames of ``path`` as ``(N, C, H, W)`` uint8, and the video's fps.

    Holds the whole video in memory: long footage goes through the frame cache
    (:mod:`memad.data.cache`), which streams it.
    """
    with open_video(path, size_hw=size_hw, channels=channels) as video:
        blocks = list(video.chunks(256))
        fps = video.fps
    if not blocks:
        raise DataError(f"{path}: no frames decoded; expected a video with at least one frame")
    return np.concatenate(blocks), fps


class VideoWriter:
    """Encode frames one at a time into a video file, written atomically.

    Frames are ``(H, W, C)`` or ``(C, H, W)`` uint8 with C = 1 or 3 (or ``(H, W)`` grey); the
    first one sets the size, which must be even (4:2:0 chroma). The encoder follows the file
    ending (``.avi``: MPEG-4 Part 2; ``.mp4``/``.mkv``/``.mov``: H.264 at CRF 17; ``.webm``:
    VP9) unless ``codec`` is given. The file is encoded under a temporary name and renamed
    into place by :meth:`close`: an interrupted write leaves no half video behind.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, *, codec: str | None = None,
                 options: dict[str, str] | None = None):
        self.path, self.fps = Path(path), fps
        self.codec, default_options = (codec, None) if codec else _ENCODERS.get(self.path.suffix.lower(),
                                                                                 _ENCODERS[".mp4"])
        self.options = options if options is not None else (default_options or {})
        self.frames = 0
        self._tmp = self.path.parent / f".{self.path.stem}.{secrets.token_hex(4)}.tmp{self.path.suffix}"
        self._out = self._stream = None

    def _open(self, h: int, w: int) -> None:
        av = _av()
        if h % 2 or w % 2:
            raise DataError(f"{self.path}: frames are {h}x{w}; the encoder needs an even height and width")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(str(self._tmp), "w", format=_MUXERS.get(self.path.suffix.lower()))
        rate = round(self.fps) if float(self.fps).is_integer() else Fraction(self.fps).limit_denominator(1001)
        self._stream = self._out.add_stream(self.codec, rate=rate, options=self.options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, "yuv420p"
        if self.codec == "mpeg4":
            self._stream.bit_rate = max(2_000_000, 24 * h * w)  # near-lossless: the default 200 kb/s smears frames

    def write(self, frame: np.ndarray) -> None:
        """Append one frame."""
        av = _av()
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise DataError(f"{self.path}: a frame to write must be uint8 (H, W, C), got {frame.dtype} {frame.shape}")
        if frame.ndim == 2:
            frame = frame[..., None]
        if frame.shape[0] in (1, 3) and frame.shape[2] not in (1, 3):
            frame = frame.transpose(1, 2, 0)
        if frame.shape[2] == 1:
            frame = np.repeat(frame, 3, axis=2)
        if self._out is None:
            self._open(frame.shape[0], frame.shape[1])
        elif (frame.shape[0], frame.shape[1]) != (self._stream.height, self._stream.width):
            raise DataError(f"{self.path}: frame {self.frames} is {frame.shape[0]}x{frame.shape[1]}, the video "
                            f"{self._stream.height}x{self._stream.width}; expected one size")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._out.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._out is None:
            raise DataError(f"{self.path}: no frames were written; a video needs at least one")
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._out is not None:
            self._out.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float = 25.0, *,
                codec: str | None = None, options: dict[str, str] | None = None) -> Path:
    """Encode ``frames`` (an array ``(T, H, W, C)``/``(T, C, H, W)``, or any iterable of frames) as a
    video file with a :class:`VideoWriter`; returns the path."""
    with VideoWriter(path, fps, codec=codec, options=options) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path
