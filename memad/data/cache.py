"""The on-disk frame cache: a split decoded and resized once, reused by later runs.

One entry (a folder under ``data.cache_dir``, by default ``<user cache dir>/memad/frames``)
per source, split, frame size and channel count::

    <name>-<key>/frames.u8       the frames, uint8 (N, C, H, W), raw (read through np.memmap or pread)
    <name>-<key>/masks.npy       pixel masks at the evaluation size, bool (N, h, w)  (test splits with masks)
    <name>-<key>/mask_any.npy    per frame: 1 when its full-size mask has an anomalous pixel, 0 if not,
                                 -1 for a video without masks                         (test splits with masks)
    <name>-<key>/manifest.json   shapes, videos, fps, checksums; written last

``key`` hashes the source files (paths, sizes, modification times), the frame size, the
channels and the mask size: a changed file gives a new key and a rebuild. An entry is
built in a temporary folder, the manifest written last, then renamed into place, so a
build that is interrupted leaves nothing a later run trusts (its leftover is removed by the
next build). Concurrent runs (torchrun ranks, parallel jobs) take a file lock: one builds,
the others wait and reuse it.

Checked on every open, before any frame is read: the manifest's own checksum, the exact
size of ``frames.u8``, the CRC-32 of the small mask files, and the CRC-32 of 4 MiB blocks
of the frames: all of them up to 256 MiB of frames, beyond that 64 blocks spread evenly
over the file (first and last included), so an open reads at most 256 MiB whatever the
split's size (about 0.1 s from the page cache). Truncation and a damaged manifest are
always caught; damage inside an unsampled block of a large entry is not (a full check:
:func:`verify` with ``full=True``). Any failed check rebuilds the entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from .sources import SplitSource

__all__ = ["FrameStore", "CacheEntry", "default_cache_dir", "cache_key", "open_or_build", "verify"]

FORMAT = 1
BLOCK = 4 << 20
VERIFY_BYTES = 256 << 20
FRAMES, MASKS, MASK_ANY, MANIFEST = "frames.u8", "masks.npy", "mask_any.npy", "manifest.json"


def default_cache_dir() -> Path:
    """``<user cache dir>/memad/frames`` (platformdirs: ~/.cache on Linux, ~/Library/Caches on macOS...)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("memad")) / "frames"


class FrameStore:
    """uint8 frames ``(N, C, H, W)`` in a raw file, read with ``os.pread``.

    Reads do not map the file into the process, so its resident memory stays what the
    caller keeps (the page cache holds the rest and the kernel frees it as needed). Safe to
    pickle into DataLoader workers: each process opens the file for itself.
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int, int], start: int = 0):
        self.path, self.shape, self.start = Path(path), tuple(int(s) for s in shape), int(start)
        self.frame_bytes = int(np.prod(self.shape[1:]))
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {"path": self.path, "shape": self.shape, "start": self.start}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["shape"], state["start"])

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start + count - 1`` as a new ``(count, C, H, W)`` array."""
        if start < 0 or count < 0 or start + count > self.shape[0]:
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} outside 0..{self.shape[0] - 1}")
        out = np.empty((count, *self.shape[1:]), dtype=np.uint8)
        want, offset, view = out.nbytes, (self.start + start) * self.frame_bytes, memoryview(out).cast("B")
        done = 0
        while done < want:  # a read may return less than asked (signals, very large reads)
            got = self._read_into(view[done:], offset + done)
            if got <= 0:
                raise DataError(f"{self.path}: frame cache ends early (read {done} of {want} bytes at {offset}); "
                                f"delete it to rebuild")
            done += got
        return out

    def _read_into(self, buffer: memoryview, offset: int) -> int:
        if hasattr(os, "preadv"):  # positional: threads and processes never race on a file offset
            return os.preadv(self._file(), [buffer], offset)
        with open(self.path, "rb") as fh:  # Windows has no preadv
            fh.seek(offset)
            return fh.readinto(buffer) or 0

    def view(self, start: int, count: int) -> "FrameStore":
        """The frames ``start .. start + count - 1`` as a store of their own (no copy)."""
        return FrameStore(self.path, (count, *self.shape[1:]), self.start + start)

    def memmap(self) -> np.ndarray:
        """All frames as a copy-on-write memory map (writable for torch, never written back)."""
        return np.memmap(self.path, dtype=np.uint8, mode="c", offset=self.start * self.frame_bytes, shape=self.shape)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to release
            pass


class _FileSink:
    """Frames appended to a file, with a CRC-32 per :data:`BLOCK` bytes."""

    def __init__(self, path: Path):
        self.path, self.file = path, open(path, "wb")
        self.crcs: list[int] = []
        self._crc, self._in_block, self.frames = 0, 0, 0

    def write(self, block: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(block)).cast("B")
        self.file.write(data)
        self.frames += block.shape[0]
        while len(data):
            take = min(len(data), BLOCK - self._in_block)
            self._crc = zlib.crc32(data[:take], self._crc)
            self._in_block += take
            data = data[take:]
            if self._in_block == BLOCK:
                self.crcs.append(self._crc)
                self._crc, self._in_block = 0, 0

    def close(self) -> None:
        if self._in_block:
            self.crcs.append(self._crc)
            self._crc, self._in_block = 0, 0
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


@dataclass
class CacheEntry:
    """An opened, checked cache entry."""

    path: Path
    manifest: dict[str, Any]

    @property
    def store(self) -> FrameStore:
        return FrameStore(self.path / FRAMES, tuple(self.manifest["shape"]))

    def masks(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The cached masks (memory-mapped, copy-on-write) and per-frame mask flags, or Nones."""
        if not self.manifest.get("masks"):
            return None, None
        return np.load(self.path / MASKS, mmap_mode="c"), np.load(self.path / MASK_ANY)


def _files_fingerprint(src: SplitSource) -> list:
    out = []
    for video in src.videos:
        for f in video.files():
            try:
                st = f.stat()
            except OSError as exc:
                raise DataError(f"{f}: cannot read this file of video {video.name!r} ({exc})") from exc
            out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def cache_key(src: SplitSource, size_hw: tuple[int, int], channels: int, mask_hw: tuple[int, int]) -> str:
    """A hash of the source files (paths, sizes, modification times) and the decoded shape."""
    desc = {"format": FORMAT, "split": src.split, "size": list(size_hw), "channels": channels,
            "mask": list(mask_hw) if src.split == "testing" else None,
            "videos": [v.name for v in src.videos], "files": _files_fingerprint(src)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20]


def _entry_name(src: SplitSource, size_hw: tuple[int, int], channels: int, key: str) -> str:
    parts = [p for p in Path(src.source).parts[-3:] if p not in ("/", "")]
    slug = "-".join(parts) or "split"
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in slug)[:60]
    return f"{slug}-{size_hw[0]}x{size_hw[1]}x{channels}-{key}"


def _crc_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(BLOCK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _manifest_crc(manifest: dict) -> int:
    body = {k: v for k, v in manifest.items() if k != "crc"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


def verify(path: str | Path, key: str | None = None, *, full: bool = False) -> str | None:
    """Why the entry at ``path`` cannot be trusted, or None when its checks pass (see the module docstring)."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return f"manifest unreadable ({exc.__class__.__name__})"
    if not isinstance(manifest, dict) or manifest.get("crc") != _manifest_crc(manifest):
        return "manifest checksum does not match"
    if manifest.get("format") != FORMAT or (key is not None and manifest.get("key") != key):
        return "written for other sources or by another memad version"
    frames = path / FRAMES
    want = int(np.prod(manifest["shape"]))
    size = frames.stat().st_size if frames.is_file() else -1
    if size != want:
        return f"{FRAMES} is {size} bytes, expected {want}"
    crcs = manifest["block_crcs"]
    if len(crcs) != -(-want // BLOCK):
        return "block checksums missing"
    blocks = range(len(crcs))
    if not full and want > VERIFY_BYTES:
        blocks = sorted(set(np.linspace(0, len(crcs) - 1, VERIFY_BYTES // BLOCK).round().astype(int).tolist()))
    with open(frames, "rb") as fh:
        for b in blocks:
            fh.seek(b * BLOCK)
            if zlib.crc32(fh.read(BLOCK)) != crcs[b]:
                return f"{FRAMES}: block {b} ({b * BLOCK} bytes in) does not match its checksum"
    for name in (MASKS, MASK_ANY) if manifest.get("masks") else ():
        if not (path / name).is_file() or _crc_file(path / name) != manifest["file_crcs"][name]:
            return f"{name} missing or does not match its checksum"
    return None


def _open_checked(path: Path, key: str) -> tuple[CacheEntry | None, str | None]:
    if not path.is_dir():
        return None, None
    why = verify(path, key)
    if why is not None:
        return None, why
    return CacheEntry(path, json.loads((path / MANIFEST).read_text())), None


def open_or_build(src: SplitSource, size_hw: tuple[int, int], channels: int, mask_hw: tuple[int, int],
                  build: Callable[[_FileSink], dict[str, Any]], *, cache_dir: str | Path | None = None) -> CacheEntry:
    """The checked cache entry of ``src`` at this shape, built first if missing, stale or damaged.

    ``build(sink)`` decodes the split, writing ``(k, C, H, W)`` uint8 blocks with
    ``sink.write`` in order, and returns the manifest's fields: ``names``, ``lengths``,
    ``fps``, ``native`` and, for test splits with masks, ``masks`` and ``mask_any`` arrays.
    """
    from filelock import FileLock

    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"data.cache_dir={str(root)!r}: cannot create the frame cache folder ({exc})") from exc
    key = cache_key(src, size_hw, channels, mask_hw)
    name = _entry_name(src, size_hw, channels, key)
    final = root / name
    entry, _ = _open_checked(final, key)  # the common case, without taking the lock
    if entry is not None:
        return entry
    if not os.access(root, os.W_OK | os.X_OK):
        raise DataError(f"data.cache_dir={str(root)!r}: holds no valid frame cache of {src.source} at this size and "
                        f"cannot be written (permission denied); make it writable, point data.cache_dir at a "
                        f"writable folder, or keep the split in memory (data.in_memory=true)")
    lock = FileLock(str(root / f"{name}.lock"))
    try:
        lock.acquire(timeout=1)
    except TimeoutError:
        warnings.warn(f"{final}: another process is building this frame cache; waiting for it", stacklevel=3)
        lock.acquire()
    except PermissionError as exc:  # writable by mode, refused anyway (a read-only mount)
        raise DataError(f"data.cache_dir={str(root)!r}: cannot take the frame cache's lock ({exc}); point "
                        f"data.cache_dir at a writable folder, or set data.in_memory=true") from exc
    try:
        entry, why = _open_checked(final, key)  # built by the process we waited for?
        if entry is not None:
            return entry
        if why is not None:
            warnings.warn(f"{final}: frame cache not trusted ({why}); rebuilding it", stacklevel=3)
        shutil.rmtree(final, ignore_errors=True)
        for stale in root.glob(f".{name}.tmp-*"):  # left by a build that was killed (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            _build(tmp, key, src, size_hw, channels, build)
            os.rename(tmp, final)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry, why = _open_checked(final, key)
        if entry is None:
            raise DataError(f"{final}: the frame cache just written fails its check ({why}); is the disk full?")
        return entry
    finally:
        lock.release()


def _build(tmp: Path, key: str, src: SplitSource, size_hw, channels: int, build) -> None:
    sink = _FileSink(tmp / FRAMES)
    try:
        meta = build(sink)
    except OSError as exc:
        raise DataError(f"{tmp.parent}: cannot write the frame cache ({exc}); free some space or set "
                        f"data.cache_dir") from exc
    finally:
        if not sink.file.closed:
            sink.close()
    manifest: dict[str, Any] = {
        "format": FORMAT, "key": key, "source": src.source, "split": src.split, "created": time.time(),
        "shape": [sink.frames, channels, *size_hw], "names": meta["names"], "lengths": meta["lengths"],
        "fps": meta["fps"], "native": meta.get("native"), "block_crcs": sink.crcs,
        "masks": meta.get("masks") is not None, "file_crcs": {}}
    if manifest["masks"]:
        for fname, arr in ((MASKS, meta["masks"]), (MASK_ANY, meta["mask_any"])):
            with open(tmp / fname, "wb") as fh:
                np.save(fh, arr)
                fh.flush()
                os.fsync(fh.fileno())
            manifest["file_crcs"][fname] = _crc_file(tmp / fname)
    manifest["crc"] = _manifest_crc(manifest)
    with open(tmp / MANIFEST, "w") as fh:  # last: an entry without it is never trusted
        fh.write(json.dumps(manifest))
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
