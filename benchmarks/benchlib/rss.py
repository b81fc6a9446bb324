"""The process's resident set size, and its peak over a block sampled in a thread (:class:`PeakRSS`)."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time

__all__ = ["rss", "PeakRSS"]


def rss() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The resident set sampled every millisecond in a thread; ``growth`` is the peak above the start."""

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed pages back to the OS, so old peaks do not hide new ones
        except (OSError, AttributeError):
            pass
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start
