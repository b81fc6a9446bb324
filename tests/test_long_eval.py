"""Long evaluations hold memory flat: scoring keeps no autograd graph and nothing grows per frame except
the per-frame outputs it returns (scores, statistics, error maps, masks).

Peak memory is measured two ways while a long synthetic test set is scored: the process's resident set
(sampled from /proc every millisecond or so: torch's tensors live outside Python's allocator) and
tracemalloc's peak (Python objects and numpy arrays). Run this file as a script for the figures:
``OMP_NUM_THREADS=1 python -m tests.test_long_eval``.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from benchlib.rss import PeakRSS  # noqa: E402

SIDE = 16
MiB = 2**20




@dataclass
class Measurement:
    frames: int
    scored: int
    rss_growth: int  # bytes above the resident set before scoring
    traced_peak: int  # bytes, tracemalloc's peak during scoring
    output_bytes: int  # what the returned Scores hold per frame, all frames
    seconds: float


def _output_bytes(result) -> int:
    arrays = [result.scores, result.frame, result.video, result.labels, result.stats.psnr, result.stats.mse,
              result.stats.distance, *result.stats.extra.values()]
    total = sum(a.nbytes for a in arrays if a is not None)
    for t in (result.maps, result.masks):
        if t is not None:
            total += t.numel() * t.element_size()
    return total


def detector(mode: str = "batched"):
    return memad.build("mnad_pred", data={"image_size": SIDE, "channels": 1}, encoder={"widths": [8, 16, 32, 64]},
                       train={"device": "cpu", "progress": False}, test={"mode": mode, "chunk": 64})


def synthetic_test_set(frames: int, videos: int = 4):
    spec = SyntheticSpec(train_videos=1, test_videos=videos, frames_per_video=frames // videos, seed=1)
    return make_synthetic("testing", (SIDE, SIDE), 1, SIDE, spec)


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS, so that the next peak is not hidden in memory kept from before."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the RSS figures are then upper bounds
        pass


def measure(det, videos) -> Measurement:
    _release_free_memory()
    tracemalloc.start()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        result = det.score(videos)
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Measurement(len(videos), len(result.scores), rss.growth, traced_peak, _output_bytes(result), seconds)


@pytest.fixture(scope="module")
def warm_detector():
    det = detector()
    det.score(synthetic_test_set(200))  # first-call allocations (thread pools, allocator arenas) are not per frame
    return det


def test_memory_does_not_grow_with_the_number_of_frames(warm_detector):
    short, long = measure(warm_detector, synthetic_test_set(400)), measure(warm_detector, synthetic_test_set(3200))
    assert long.scored > 3000
    extra_outputs = long.output_bytes - short.output_bytes
    # The outputs exist up to three times at the end (per-video buffers, their concatenation, the float64
    # statistics and the masks of the scored frames); a graph or any per-frame activation kept alive
    # would add tens of KiB per frame (~45 MiB here, see the control below).
    assert long.rss_growth - short.rss_growth <= 3 * extra_outputs + 12 * MiB, (short, long)
    assert long.traced_peak - short.traced_peak <= 3 * extra_outputs + 4 * MiB, (short, long)


def test_the_measurement_sees_a_per_frame_leak(warm_detector, monkeypatch):
    """The control: keeping each batch's encoder features alive (a leak of ~15 KiB per frame, kept in fp32
    whatever test.amp computes them in) shows up."""
    kept = []
    encoder_forward = warm_detector.encoder.forward

    def leaky(x):
        feats = encoder_forward(x)
        kept.append([f.to(torch.float32, copy=True) for f in feats])
        return feats

    monkeypatch.setattr(warm_detector.encoder, "forward", leaky)
    short, long = measure(warm_detector, synthetic_test_set(400)), measure(warm_detector, synthetic_test_set(3200))
    kept_bytes = sum(f.numel() * f.element_size() for feats in kept for f in feats)
    assert kept_bytes > 30 * MiB
    assert long.rss_growth - short.rss_growth > 3 * (long.output_bytes - short.output_bytes) + 12 * MiB


def test_scoring_builds_no_autograd_graph(monkeypatch):
    det = detector(mode="sequential")
    seen = []
    forward = det.network.forward

    def record(x):
        out = forward(x)
        seen.append((torch.is_grad_enabled(), out.output.requires_grad, out.output.grad_fn))
        return out

    monkeypatch.setattr(det.network, "forward", record)
    det.score(synthetic_test_set(40))
    assert len(seen) == 4 * (10 - 4)  # sequential: one pass per predicted frame
    assert all(s == (False, False, None) for s in seen)
    assert all(p.grad is None for p in det.parameters())


def _report() -> None:
    print(f"{'mode':>10} {'frames':>7} {'scored':>7} {'RSS growth MiB':>15} {'tracemalloc peak MiB':>21} "
          f"{'outputs MiB':>12} {'bytes/frame out':>16} {'s':>6}")
    for mode, sizes in (("batched", (500, 1000, 2000, 4000, 8000)), ("sequential", (500, 1000, 2000))):
        det = detector(mode)
        det.score(synthetic_test_set(200))
        for n in sizes:
            m = measure(det, synthetic_test_set(n))
            print(f"{mode:>10} {m.frames:>7} {m.scored:>7} {m.rss_growth / MiB:>15.1f} {m.traced_peak / MiB:>21.2f} "
                  f"{m.output_bytes / MiB:>12.2f} {m.output_bytes / m.scored:>16.0f} {m.seconds:>6.1f}")
            sys.stdout.flush()


if __name__ == "__main__":
    _report()
