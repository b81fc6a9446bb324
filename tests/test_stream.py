"""Detector.stream: frame-by-frame calibrated scores equal the offline ones, online memory writes,
the drop policy, and bad frames named."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.scoring.stream import _LatestFrames

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


@pytest.fixture(scope="module")
def calibrated():
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 6}, memory={"gate": 0.05}))
    fit_and_calibrate(det, SPEC)
    return det, make_synthetic("testing", (32, 32), 3, 32, SPEC)


def _hwc(frames: torch.Tensor) -> list[np.ndarray]:
    return [f.permute(1, 2, 0).numpy() for f in frames]


def test_stream_scores_equal_the_offline_calibrated_scores(calibrated):
    det, test = calibrated
    video = test.video(1)
    offline = det.score(video)
    items = det.memory.items.clone()
    results = list(det.stream(_hwc(video.frames)))
    assert [r.index for r in results] == offline.frame.tolist()  # frames 4.. of the video, in order
    np.testing.assert_array_equal(np.array([r.score for r in results]), offline.calibrated)
    assert [r.anomalous for r in results] == (offline.calibrated >= det.threshold_).tolist()
    assert all(r.latency > 0 and r.dropped == 0 and r.policy == "block" for r in results)
    # the memory was written as the stream went (distance differs from a frozen memory's) and restored after
    frozen = det.config["test"]["update"] = False
    try:
        no_writes = det.score(video)
    finally:
        det.config["test"]["update"] = True
    assert not frozen and not np.array_equal(no_writes.stats.distance, offline.stats.distance)
    np.testing.assert_allclose([r.signals["distance"] for r in results], offline.stats.distance)
    assert torch.equal(det.memory.items, items)


def test_stream_needs_a_calibration_and_says_how():
    det = memad.build("ae", **tiny())
    with pytest.raises(memad.ConfigError, match="is not calibrated, which streamed scores needs: run .memad calibrate CHECKPOINT --data DATA"):
        next(det.stream([np.zeros((32, 32, 3), np.uint8)]))


def test_frames_of_another_size_are_resized_with_one_warning_and_grey_converted_as_files_are(calibrated):
    det, test = calibrated
    big = [np.full((48, 40, 3), 128, np.uint8)] * 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(det.stream(big))
    assert len(out) == 2 and len([w for w in caught if "resizing them to the model's 32x32" in str(w.message)]) == 1
    # Grey frames for a colour model: converted as Pillow converts a grey image file (channels repeated), so
    # they score as the same picture stored in 3 channels.
    grey = [f[0].numpy()[:, :, None] for f in test.video(0).frames[:6]]
    same = [np.repeat(g, 3, axis=2) for g in grey]
    np.testing.assert_allclose([r.score for r in det.stream(grey)], [r.score for r in det.stream(same)])
    with pytest.raises(memad.DataError, match="stream frame 0: expected an H x W or H x W x C array with C of 1, 3 "
                                              "or 4, got shape \\(32, 32, 2\\)"):
        list(det.stream([np.zeros((32, 32, 2), np.uint8)] * 5))


def test_drop_policy_keeps_the_newest_frames_and_counts_the_rest():
    def source():
        for i in range(50):
            yield i  # produced far faster than the consumer below reads them

    seen = []
    reader = _LatestFrames(source(), keep=1)
    for index, frame, _ in reader:
        seen.append(index)
        time.sleep(0.01)
    assert seen == sorted(seen) and seen[-1] == 49  # in order, ending with the newest
    assert reader.dropped == 50 - len(seen) > 0  # every frame is either read or counted as dropped


def test_stream_with_drop_policy_reports_dropped_frames(calibrated):
    det, test = calibrated
    frames = _hwc(test.video(0).frames)

    def camera():  # a live source: frames arrive on their own clock
        for f in frames:
            time.sleep(0.01)
            yield f

    results = list(det.stream(camera(), policy="drop"))
    assert results and all(r.policy == "drop" for r in results)
    assert [r.index for r in results] == sorted({r.index for r in results})
    # The newest frame is always read, so the last result counts every frame skipped: each frame was
    # either read (the warm-up frames that fill the first clip, then one per result) or dropped.
    assert results[-1].index == len(frames) - 1
    assert results[-1].dropped + len(results) + det.clip_length - 1 == len(frames)
