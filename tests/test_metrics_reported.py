"""The metrics `memad eval` reports beyond the frame AUROC: checked on hand-made scores against
independent counts (pairs for AUROCs, frames for events), and scoring's streamed pixel metrics and
kept maps against the exact computation over every map."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import memad
from memad.cli.common import REPORTED
from memad.data import VideoSet, open_split
from memad.interfaces import FrameStats
from memad.metrics import StreamedRegions, frame_metrics, pixel_auroc, rbdc_tbdc, streamed_rbdc_tbdc
from memad.reports.compare_report import RunResult, aggregate, results_markdown
from memad.scoring.scores import Scores
from tests.test_datasets_specs import CFG, write_shanghaitech


def pair_auroc(scores, labels) -> float:
    """The AUROC as the share of (anomalous, normal) pairs ordered right, ties half: the definition."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def scores_of(values, labels, video, *, calibrated=None, scenes=None) -> Scores:
    video = np.asarray(video)
    return Scores(scores=np.asarray(values, float), frame=np.arange(len(video)), video=video,
                  labels=np.asarray(labels, np.int8), stats=FrameStats(video, {"mse": np.zeros(len(video))}),
                  maps=None, masks=None, video_names=[f"v{i}" for i in range(video.max() + 1)], seconds=1.0,
                  calibrated=None if calibrated is None else np.asarray(calibrated, float), scenes=scenes)


V0 = ([0.1, 0.2, 0.9, 0.8, 0.3], [0, 0, 1, 1, 0])
V1 = ([0.5, 0.4, 0.6, 0.1, 0.7], [0, 1, 0, 0, 1])


def two_videos(**kw) -> Scores:
    return scores_of(V0[0] + V1[0], V0[1] + V1[1], [0] * 5 + [1] * 5, **kw)


def test_existing_keys_keep_their_values():
    s = two_videos()
    m, old = s.metrics(), frame_metrics(s.scores, s.labels, s.video)
    assert {k: m[k] for k in old} == old
    assert m["frame_auroc"] == pytest.approx(pair_auroc(s.scores, s.labels))


def test_padded_macro_auroc_adds_a_dummy_frame_of_each_class_to_every_video():
    expected = np.mean([pair_auroc([min(v), *v, max(v)], [0, *y, 1]) for v, y in (V0, V1)])
    assert two_videos().metrics()["frame_auroc_macro_pad"] == pytest.approx(expected)


def test_per_scene_auroc_pools_the_frames_of_each_scenes_videos():
    three = scores_of(V0[0] + V1[0] + [0.2, 0.9], V0[1] + V1[1] + [0, 1], [0] * 5 + [1] * 5 + [2] * 2,
                      scenes=["01", "02", "01"])
    per = three.metrics()["frame_auroc_per_scene"]
    assert per == {"01": pytest.approx(pair_auroc(V0[0] + [0.2, 0.9], V0[1] + [0, 1])),
                   "02": pytest.approx(pair_auroc(*V1))}
    assert two_videos().metrics()["frame_auroc_per_scene"] is None  # no scenes declared


def test_bootstrap_interval_is_seeded_and_brackets_the_auroc():
    rng = np.random.default_rng(0)
    video = np.repeat(np.arange(12), 30)
    labels = (rng.random(len(video)) < 0.3).astype(int)
    s = scores_of(labels + rng.normal(0, 0.8, len(video)), labels, video)
    a, b = s.metrics(seed=3)["frame_auroc_ci95"], s.metrics(seed=3)["frame_auroc_ci95"]
    assert a == b and a[0] < s.metrics()["frame_auroc"] < a[1]
    assert s.metrics(seed=4)["frame_auroc_ci95"] != a
    assert s.metrics(resamples=50, seed=3)["frame_auroc_ci95"] != a


def test_event_metrics_at_the_calibrated_threshold_count_events_delays_and_false_alarms():
    # Per video 100 frames: an anomalous event at frames 40-59 (calibrated score 10, else 0); video 1 also
    # has a normal burst at frames 80-89. With memad detect's tracker (a 5-frame causal mean, threshold 5)
    # an alarm starts once 3 of the last 5 frames score 10: 2 frames into each event.
    labels = np.zeros(200, int)
    labels[40:60] = labels[140:160] = 1
    calibrated = 10.0 * labels
    calibrated[180:190] = 10.0
    s = scores_of(np.linspace(0, 1, 200), labels, np.repeat([0, 1], 100), calibrated=calibrated)
    m = s.metrics(threshold=5.0)
    assert m["event_recall"] == 1.0 and m["delay_median"] == 2.0 and m["delay_p90"] == 2.0
    assert m["false_alarms_per_1000"] == pytest.approx(1000 / 160)  # one false alarm in 160 normal frames
    assert "event_recall" not in two_videos().metrics(threshold=5.0)  # uncalibrated: no events


def test_every_new_key_is_reported_by_the_cli():
    for key in ("frame_auroc_macro_pad", "frame_auroc_per_scene", "frame_auroc_ci95", "rbdc", "tbdc",
                "event_recall", "false_alarms_per_1000", "delay_median", "delay_p90"):
        assert key in REPORTED


def test_shanghaitech_videos_declare_their_scene(tmp_path):
    root = write_shanghaitech(tmp_path / "sh")
    test = open_split(f"shanghaitech:{root}", "testing", CFG)
    assert test.scenes == ["01", "01"] and test.video(1).scenes == ["01"]
    assert open_split("synthetic", "testing", memad.config.make_config("ae", {"data.image_size": 16})).scenes is None
    with pytest.raises(memad.DataError, match="one scene per video"):
        VideoSet(test.frames, test.names, test.lengths, scenes=["01"])


# -- streamed RBDC / TBDC ------------------------------------------------------------------
def blob_maps(seed: int, n: int = 48, videos: int = 3):
    rng = np.random.default_rng(seed)
    maps = rng.gamma(1.0, 0.01, (n, 20, 24)).astype(np.float32)
    masks = np.zeros(maps.shape, bool)
    for i in range(n):
        if i % 16 > 5:
            r, c = 2 + i % 16 // 2, 3 + (i * 5) % 12
            masks[i, r:r + 4, c:c + 5] = True
            maps[i, r:r + 4, c:c + 5] += rng.uniform(0.0, 0.08)
    maps[n // 2, 0, 0] = 3.0  # a late outlier: the adaptive levels double
    return maps, masks, np.repeat(np.arange(videos), n // videos)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_rbdc_equals_the_in_memory_sweep_at_its_levels(seed):
    maps, masks, video = blob_maps(seed)
    acc = StreamedRegions(16)
    for v in range(3):  # each video in two calls: its tracks continue
        sel = np.flatnonzero(video == v)
        acc.update(maps[sel[:5]], masks[sel[:5]], v)
        acc.update(maps[sel[5:]], masks[sel[5:]], v)
    got = acc.compute()
    want = rbdc_tbdc(maps, masks, video, thresholds=acc.levels)
    assert acc.levels.max() >= 3.0 and len(acc.levels) == 16
    assert (got["regions"], got["tracks"], got["frames"]) == (want["regions"], want["tracks"], want["frames"])
    for key in ("fp_per_frame", "rbdr", "tbdr", "threshold"):
        np.testing.assert_allclose(got["curve"][key], want["curve"][key])
    assert got["rbdc"] == pytest.approx(want["rbdc"]) and got["tbdc"] == pytest.approx(want["tbdc"])


def test_streamed_rbdc_with_given_levels_and_errors():
    maps, masks, video = blob_maps(5)
    levels = np.array([0.01, 0.03, 0.05, 0.09])
    assert streamed_rbdc_tbdc(maps, masks, video, levels=levels)["rbdc"] == pytest.approx(
        rbdc_tbdc(maps, masks, video, thresholds=levels)["rbdc"])
    with pytest.raises(memad.ConfigError, match="even count"):
        StreamedRegions(7)
    with pytest.raises(memad.DataError, match="same shape"):
        StreamedRegions().update(maps[:2], masks[:1])
    maps[0, 0, 0] = np.nan
    with pytest.raises(memad.NumericalError):
        StreamedRegions().update(maps[:2], masks[:2])


# -- scoring: the maps streamed, a few kept ------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    det = memad.build("mnad_pred", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]},
                      train={"epochs": 1, "max_steps_per_epoch": 5, "progress": False, "device": "cpu"},
                      test={"mode": "batched"})
    det.fit("synthetic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        det.calibrate("synthetic")
    return det, det.score("synthetic", keep_maps="all")


def test_streamed_pixel_auroc_is_within_its_bound_of_the_exact_one(trained):
    _, every = trained
    exact = pixel_auroc(every.maps, every.masks)
    assert abs(every.pixel["pixel_auroc"] - exact) <= every.pixel["pixel_auroc_bound"] + 1e-12
    assert abs(every.pixel["pixel_auroc"] - exact) < 0.002
    regions = every.pixel["regions"]
    want = rbdc_tbdc(every.maps.float().numpy(), every.masks.numpy(), every.video,
                     thresholds=np.array(regions["curve"]["threshold"]))
    assert regions["rbdc"] == pytest.approx(want["rbdc"]) and regions["tbdc"] == pytest.approx(want["tbdc"])
    assert every.metrics()["rbdc"] == regions["rbdc"]


def test_scoring_keeps_the_maps_of_the_top_frames_only(trained):
    det, every = trained
    top = det.score("synthetic")
    ranked = np.argsort(-top.scores, kind="stable")
    assert np.array_equal(top.map_frames, np.sort(ranked[:16]))
    assert np.array_equal(top.maps.numpy(), every.maps[top.map_frames].numpy())
    assert np.array_equal(top.masks.numpy(), every.masks[top.map_frames].numpy())
    assert top.metrics() == {**every.metrics(), "fps": top.metrics()["fps"]}
    both = det.score("synthetic", keep_maps=3, keep_lowest=2)
    assert np.array_equal(both.map_frames, np.sort(np.r_[ranked[:3], ranked[-2:]]))
    assert both.map_index(int(ranked[0])) is not None and both.map_index(int(ranked[5])) is None
    assert det.score("synthetic", keep_maps=0).maps is None
    with pytest.raises(memad.ConfigError, match="keep_maps"):
        det.score("synthetic", keep_maps=-1)


def test_the_maps_of_frames_asked_for_are_kept_whatever_their_scores(trained):
    from memad.scoring.runner import score_videos

    det, every = trained
    lowest, other = int(np.argsort(-every.scores, kind="stable")[-1]), 10
    asked = score_videos(det, "synthetic", keep_maps=1, keep_frames=[int(every.frame[lowest]), int(every.frame[other])])
    top = int(np.argmax(every.scores))
    assert np.array_equal(asked.map_frames, np.sort(np.unique([lowest, other, top])))
    for pos in (lowest, other, top):
        assert np.array_equal(asked.maps[asked.map_index(pos)].numpy(), every.maps[pos].numpy())


def test_compare_table_shows_the_new_columns_and_the_interval(tmp_path):
    runs = [RunResult("p", k, tmp_path, {"frame_auroc": a, "frame_auroc_ci95": ci, "rbdc": 0.3, "tbdc": 0.5,
                                         "event_recall": 1.0, "false_alarms_per_1000": 2.0, "delay_median": 3.0,
                                         "delay_p90": 5.0, "frame_auroc_per_scene": {"01": a}}, False)
            for k, (a, ci) in enumerate([(0.8, [0.7, 0.9]), (0.9, [0.8, 0.96])])]
    rows = aggregate(runs)
    assert rows[0]["frame_auroc_ci95_mean"] == pytest.approx([0.75, 0.93])
    assert rows[0]["frame_auroc_per_scene_mean"] == {"01": pytest.approx(0.85)}
    table = results_markdown(rows)
    assert "0.850 ± 0.071 [0.750, 0.930]" in table
    for heading in ("RBDC", "TBDC", "event recall@thr", "false alarm events/1k normal frames@thr",
                    "delay median (frames)@thr", "delay p90 (frames)@thr", "AUROC per video (padded)"):
        assert heading in table
