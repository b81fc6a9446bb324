"""Footage to run a detector on, as ``memad detect`` takes it: a video file, a folder of frames, a
folder of videos, a camera index or a stream URL, each read frame by frame (nothing is held
but the current frame, so a live stream or hours of video run in constant memory).

>>> kind_of("rtsp://camera.local/stream"), kind_of("0")
('url', 'camera')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError
from ..frames import from_image
from .folder import FRAME_SUFFIXES, numbered_files
from .video_files import VIDEO_SUFFIXES, open_video

__all__ = ["Footage", "resolve_footage", "kind_of", "URL_SCHEMES"]

#: Input that is a network stream: FFmpeg opens it.
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


@dataclass
class Footage:
    """One video to run on: ``frames()`` yields ``(H, W, C)`` uint8 frames one at a time.

    Attributes:
        name: a name for outputs (the file's stem, the folder's name, ``camera0``, the URL's host).
        source: what was given, for messages.
        live: a camera or stream: no known end, no progress total; events are printed as they close.
        fps: frames per second, when the source says (else None).
        frame_count: frames in all, when known in advance (else None).
    """

    name: str
    source: str
    live: bool
    fps: float | None
    frame_count: int | None
    _open: Callable[[], Iterator[np.ndarray]]

    def frames(self) -> Iterator[np.ndarray]:
        return self._open()


def kind_of(text: str) -> str:
    """``url``, ``camera``, ``file`` or ``folder`` (or ``missing``) for a detect INPUT."""
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    if scheme and scheme.group(1).lower() in URL_SCHEMES:
        return "url"
    if text.isdigit() and not Path(text).exists():
        return "camera"
    path = Path(text)
    if path.is_file():
        return "file"
    if path.is_dir():
        return "folder"
    return "missing"


def _video(path_or_url: str | int, name: str, live: bool, channels: int, options: dict[str, str],
           timeout: float | None = None) -> Footage:
    # Opened now: a bad source fails early.
    stream = open_video(path_or_url, channels=channels, options=options, timeout=timeout)
    state = {"stream": stream}

    def frames() -> Iterator[np.ndarray]:
        video = state.pop("stream", None) or open_video(path_or_url, channels=channels, options=options,
                                                        timeout=timeout)
        with video:
            yield from video

    return Footage(name, str(path_or_url), live, stream.fps, None if live else stream.frame_count, frames)


def _frame_folder(folder: Path, channels: int) -> Footage:
    files = numbered_files(folder, FRAME_SUFFIXES, "frame")

    def frames() -> Iterator[np.ndarray]:
        for path in files:
            try:
                with Image.open(path) as img:
                    img.load()
                    # At its own size: the detector's frame door resizes, with its one warning.
                    arr = from_image(img, (img.height, img.width), channels)
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise DataError(f"{path}: cannot read image ({exc})") from exc
            yield arr.transpose(1, 2, 0)

    return Footage(folder.name, str(folder), False, None, len(files), frames)


def _unique_names(paths: list[Path]) -> list[str]:
    """Output names for videos: the file's stem, with its ending too where two stems are the same
    (``a.mp4`` and ``a.avi`` become ``a_mp4`` and ``a_avi``, so their outputs cannot collide)."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def resolve_footage(text: str, *, channels: int = 3, timeout: float = 10.0) -> list[Footage]:
    """The videos a detect INPUT names (one, or each video of a folder of videos).

    ``timeout`` (seconds) bounds how long a stream URL may take to answer before it is an error.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ConfigError(f"timeout: expected seconds > 0, got {timeout!r}")
    kind = kind_of(str(text))
    # FFmpeg's socket timeout is in microseconds (rtsp takes the same name); the open and every read are
    # also bounded as a whole (VideoStream's timeout), so a server that trickles bytes cannot hold it.
    net = {"timeout": str(max(1, int(timeout * 1e6)))}
    if kind == "url":
        scheme = str(text).split("://", 1)[0].lower()
        options = {"rtsp_transport": "tcp", **net} if scheme.startswith("rtsp") else net
        host = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text).split("://", 1)[1].split("/", 1)[0]) or "stream"
        return [_video(str(text), host, True, channels, options, timeout)]
    if kind == "camera":
        return [_video(int(text), f"camera{int(text)}", True, channels, {}, timeout)]
    path = Path(text)
    if kind == "file":
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(f"{path}: not a video file; expected one ending in {', '.join(VIDEO_SUFFIXES)}, a folder "
                            f"of frames or of videos, a camera index or a stream URL")
        return [_video(str(path), path.stem, False, channels, {})]
    if kind == "folder":
        entries = [p for p in path.iterdir() if p.is_file()]
        videos = sorted(p for p in entries if p.suffix.lower() in VIDEO_SUFFIXES)
        images = [p for p in entries if p.suffix.lower() in FRAME_SUFFIXES]
        if videos and images:
            raise DataError(f"{path}: holds both video files and image files; expected one or the other")
        if videos:
            return [_video(str(p), name, False, channels, {}) for p, name in zip(videos, _unique_names(videos))]
        if images:
            return [_frame_folder(path, channels)]
        raise DataError(f"{path}: no frames ({'/'.join(FRAME_SUFFIXES)}) or videos ({'/'.join(VIDEO_SUFFIXES)}) "
                        f"directly in this folder")
    raise DataError(f"{text}: no such file or folder; expected a video file, a folder of frames or of videos, a "
                    f"camera index (0, 1, ...) or a stream URL ({', '.join(s + '://' for s in URL_SCHEMES[:4])}...)")
