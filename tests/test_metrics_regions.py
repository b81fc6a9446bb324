"""RBDC and TBDC (Ramachandra & Jones, WACV 2020) on hand-made maps and masks, against answers
worked out by hand and against a brute-force re-implementation of the definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from memad.errors import ConfigError, DataError, NumericalError
from memad.metrics import box_iou, fp_curve_area, ground_truth_tracks, rbdc_tbdc

H = W = 40


def _draw(frames: list[list[tuple[int, int, int, int]]], value: float | list = 1.0) -> np.ndarray:
    """(N, H, W) float maps with ``value`` in each box ``(row, col, height, width)`` of each frame."""
    out = np.zeros((len(frames), H, W))
    for i, boxes in enumerate(frames):
        for k, (r, c, h, w) in enumerate(boxes):
            out[i, r:r + h, c:c + w] = value[k] if isinstance(value, list) else value
    return out


def _moving(n: int, start: tuple[int, int] = (5, 5), step: int = 2, size: int = 10):
    return [[(start[0], start[1] + step * i, size, size)] for i in range(n)]


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [7, 7, 17, 17], [10, 10, 20, 20]])
    # 50 / 150, 9 / 191, touching corners share no area
    assert box_iou(a, b) == pytest.approx(np.array([[50 / 150, 9 / 191, 0.0]]))


def test_a_perfect_detector_scores_one_in_both_sweeps():
    frames = _moving(6) + [[]] * 2 + _moving(4, start=(20, 2)) + [[]]
    masks = _draw(frames) > 0
    video = np.array([0] * 8 + [1] * 5)
    for kw in ({}, {"segment_at": 0.5}):
        out = rbdc_tbdc(masks.astype(float), masks, video, **kw)
        assert (out["rbdc"], out["tbdc"], out["regions"], out["tracks"]) == (1.0, 1.0, 10, 2)


def test_a_detector_shifted_below_the_iou_threshold_scores_zero():
    frames = _moving(6)
    masks = _draw(frames) > 0
    shifted = _draw([[(r + 7, c + 7, h, w)] for [(r, c, h, w)] in frames])  # IoU 9 / 191 < 0.1
    out = rbdc_tbdc(shifted, masks, np.zeros(6, int))
    assert (out["rbdc"], out["tbdc"]) == (0.0, 0.0)
    assert out["curve"]["fp_per_frame"][0] == 1.0  # each shifted box is a false positive
    half = _draw([[(r + 5, c, h, w)] for [(r, c, h, w)] in frames])  # IoU 50 / 150 >= 0.1
    assert rbdc_tbdc(half, masks, np.zeros(6, int))["rbdc"] == 1.0


def test_iou_exactly_beta_counts_as_detected():
    masks = _draw([[(5, 5, 10, 10)]] * 3) > 0
    strip = _draw([[(5, 5, 1, 10)]] * 3)  # inside the box: IoU 10 / 100 = 0.1
    assert rbdc_tbdc(strip, masks, np.zeros(3, int))["rbdc"] == 1.0
    assert rbdc_tbdc(strip, masks, np.zeros(3, int), beta=0.11)["rbdc"] == 0.0


@pytest.mark.parametrize("false_value,expected", [
    (1.0, 0.5),  # always with the true ones: points (0, 0), (1, 1): the triangle
    (0.5, 1.0),  # weaker: at t in (0.5, 1] perfect with no false positive
    (2.0, 0.5),  # stronger: (1, 0) then (1, 1); the curve still rises from (0, 0) to (1, 1)
])
def test_one_false_region_per_frame_beside_perfect_detections(false_value, expected):
    frames = _moving(5)
    masks = _draw(frames) > 0
    maps = _draw([b + [(28, 28, 6, 6)] for b in frames], value=[1.0, false_value])
    video = np.zeros(5, int)
    levels = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    assert rbdc_tbdc(maps, masks, video, thresholds=levels)["rbdc"] == pytest.approx(expected)
    assert rbdc_tbdc(maps, masks, video, thresholds=levels)["tbdc"] == pytest.approx(expected)
    assert rbdc_tbdc(maps, masks, video, segment_at=0.25)["rbdc"] == pytest.approx(expected)


def test_false_regions_are_counted_per_frame_over_all_frames():
    frames = _moving(4)
    masks = _draw(frames) > 0
    two = _draw([b + [(28, 28, 4, 4), (28, 2, 4, 4)] for b in frames])  # 2 false per frame: (2, 1)
    assert rbdc_tbdc(two, masks, np.zeros(4, int))["rbdc"] == pytest.approx(0.25)  # r(1) = 0.5: area 0.25
    some = _draw([b + ([(28, 28, 4, 4)] if i < 2 else []) for i, b in enumerate(frames)])  # 0.5 false per frame
    # (0, 0) -> (0.5, 1) -> held: 0.25 + 0.5
    assert rbdc_tbdc(some, masks, np.zeros(4, int))["rbdc"] == pytest.approx(0.75)
    assert rbdc_tbdc(some, masks, np.zeros(4, int), max_fp=0.5)["rbdc"] == pytest.approx(0.5)


@pytest.mark.parametrize("alpha,tbdc", [(0.1, 1.0), (0.5, 1.0), (0.6, 0.0)])
def test_a_track_half_detected(alpha, tbdc):
    frames = _moving(10)
    masks = _draw(frames) > 0
    maps = masks * (np.arange(10) < 5)[:, None, None].astype(float)  # the first 5 of its 10 regions
    for kw in ({}, {"segment_at": 0.5}):
        out = rbdc_tbdc(maps, masks, np.zeros(10, int), alpha=alpha, **kw)
        assert (out["rbdc"], out["tbdc"], out["tracks"]) == (pytest.approx(0.5), tbdc, 1)


def test_tracks_link_overlapping_regions_of_consecutive_frames_only():
    frames = [[(5, 5 + 2 * i, 6, 6)] + ([(25, 25, 6, 6)] if 2 <= i <= 4 else []) for i in range(5)]
    frames += [[], [(5, 14, 6, 6)], [(5, 30, 6, 6)]]  # a gap ends A's track; a jump (no overlap) starts another
    masks = _draw(frames) > 0
    gt = ground_truth_tracks(masks, np.zeros(8, int))
    assert (gt.regions, gt.tracks) == (10, 4)
    first = gt.track[gt.region[0][0]]
    assert all(gt.track[gt.region[i][0]] == first for i in range(5))
    # the same frames split over two videos: nothing links across the boundary
    assert ground_truth_tracks(masks, np.array([0, 0, 1, 1, 1, 1, 1, 1])).tracks == 5


def test_track_ids_keep_crossing_objects_apart():
    # two objects crossing: they overlap in frame 4, so linking by overlap makes one track
    ids = np.zeros((9, H, W), dtype=np.int64)
    for i in range(9):
        ids[i, 8:14, 26 - 3 * i:32 - 3 * i] = 2
        ids[i, 5:11, 2 + 3 * i:8 + 3 * i] = 1  # in front where they overlap
    masks = ids > 0
    assert ground_truth_tracks(masks, np.zeros(9, int)).tracks == 1
    gt = ground_truth_tracks(masks, np.zeros(9, int), tracks=ids)
    assert (gt.regions, gt.tracks) == (18, 2)
    # the detector sees object 1 only: 9 of the 18 regions, 1 of the 2 tracks
    maps = (ids == 1).astype(float)
    out = rbdc_tbdc(maps, None, np.zeros(9, int), tracks=ids, segment_at=0.5)
    assert (out["rbdc"], out["tbdc"]) == (pytest.approx(0.5), pytest.approx(0.5))
    with pytest.raises(DataError, match="disagree"):
        rbdc_tbdc(maps, masks & False, np.zeros(9, int), tracks=ids)


def _brute_force_point(maps, masks, video, level, beta, alpha):
    """The definition at one level, written out with Python loops (tracks linked by overlap)."""
    def boxes(binary):
        lab, _ = ndimage.label(binary, structure=np.ones((3, 3)))
        return [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in ndimage.find_objects(lab)]

    def iou(a, b):
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    gt = [boxes(m) for m in masks]
    regions = [(i, j) for i in range(len(gt)) for j in range(len(gt[i]))]
    track = {r: r for r in regions}

    def root(r):
        while track[r] != r:
            r = track[r]
        return r
    for i in range(1, len(gt)):
        if video[i] == video[i - 1]:
            for j, b in enumerate(gt[i]):
                for k, a in enumerate(gt[i - 1]):
                    if iou(a, b) > 0:
                        track[root((i - 1, k))] = root((i, j))
    hit, false = set(), 0
    for i, m in enumerate(maps):
        for d in boxes(m >= level):
            matched = [j for j, g in enumerate(gt[i]) if iou(d, g) >= beta]
            hit |= {(i, j) for j in matched}
            false += not matched
    tracks: dict = {}
    for r in regions:
        tracks.setdefault(root(r), []).append(r in hit)
    return (false / len(maps), len(hit) / len(regions),
            np.mean([np.mean(v) >= alpha for v in tracks.values()]))


@pytest.mark.parametrize("seed", range(3))
def test_the_sweep_matches_a_brute_force_reading_of_the_definition(seed):
    rng = np.random.default_rng(seed)
    n = 8
    frames = [[(int(rng.integers(0, 30)), int(rng.integers(0, 30)), 8, 8)] if rng.random() < 0.7 else []
              for _ in range(n)]
    masks = _draw(frames) > 0
    maps = ndimage.gaussian_filter(masks.astype(float) + 0.6 * rng.random((n, H, W)), sigma=(0, 2, 2))
    video = np.array([0] * 4 + [1] * 4)
    levels = np.quantile(maps, [0.5, 0.8, 0.9, 0.95, 0.99])
    out = rbdc_tbdc(maps, masks, video, thresholds=levels, alpha=0.3, beta=0.2)
    for t, fp, r, k in zip(*(out["curve"][key] for key in ("threshold", "fp_per_frame", "rbdr", "tbdr"))):
        assert (fp, r, k) == pytest.approx(_brute_force_point(maps, masks, video, t, 0.2, 0.3))
    assert out["rbdc"] == pytest.approx(fp_curve_area(out["curve"]["fp_per_frame"], out["curve"]["rbdr"]))


def test_fp_curve_area_takes_the_best_rate_at_or_below_each_fp():
    # a resegmented sweep can fall back (big merged blobs): the curve keeps the best rate seen so far
    assert fp_curve_area([0.0, 0.5, 2.0], [0.5, 1.0, 0.2]) == pytest.approx(0.5 * (0.5 + 1.0) / 2 + 0.5)
    assert fp_curve_area([], []) == 0.0


def test_bad_input_is_named():
    masks = np.zeros((2, 8, 8), bool)
    with pytest.raises(DataError, match="masks"):
        rbdc_tbdc(np.zeros((2, 8, 8)), masks[:, :4], np.zeros(2, int))
    with pytest.raises(DataError, match="video"):
        rbdc_tbdc(np.zeros((2, 8, 8)), masks, np.zeros(3, int))
    with pytest.raises(ConfigError, match="beta"):
        rbdc_tbdc(np.zeros((2, 8, 8)), masks, np.zeros(2, int), beta=0.0)
    with pytest.raises(NumericalError, match="NaN"):
        rbdc_tbdc(np.full((2, 8, 8), np.nan), masks, np.zeros(2, int))
    with pytest.raises(DataError, match="0/1"):
        rbdc_tbdc(np.zeros((2, 8, 8)), np.full((2, 8, 8), 3), np.zeros(2, int))
    assert rbdc_tbdc(np.zeros((2, 8, 8)), masks, np.zeros(2, int))["rbdc"] is None
