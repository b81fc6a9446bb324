"""benchmarks/calibration_shift.py: the false-alarm figures it reports, and `memad detect` measured as eval is."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.interfaces import FrameStats

from .conftest import fit_and_calibrate, load_script, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/calibration_shift.py", "memad_calibration_shift_script")


def test_the_rates_overall_per_video_and_by_distance_by_hand(bench):
    # video 0: normal, normal, event, normal, normal, normal; video 1: two normal frames, no event
    scores = SimpleNamespace(labels=np.array([0, 0, 1, 0, 0, 0, 0, 0]), video=np.array([0, 0, 0, 0, 0, 0, 1, 1]),
                             calibrated=np.array([0.9, 0.1, 2.0, 0.8, 0.1, 0.1, 0.1, 0.7]))
    report = bench.shift_report(scores, 0.5)
    assert report["false_alarm_rate"] == pytest.approx(3 / 7)  # frames 0, 3 and 7 of the 7 normal ones
    assert report["per_video"]["0"]["rate"] == pytest.approx(2 / 5) and report["per_video"]["1"]["rate"] == 0.5
    # distances to the event: frame 0 is 2 away, frame 1 is 1, frame 3 is 1, frames 4-5 are 2-3
    assert report["by_distance"]["1-2"] == {"rate": pytest.approx(2 / 4), "frames": 4}
    assert report["by_distance"]["3-10"] == {"rate": 0.0, "frames": 1}
    assert report["by_distance"]["no event in the video"] == {"rate": 0.5, "frames": 2}


def test_detect_scores_every_test_video_as_eval_does_when_the_memory_restarts_per_video(bench):
    # test.reset=video: eval restores the trained memory at each video, as detect starts each file afresh
    det = memad.build("mnad_pred", **tiny(test={"reset": "video", "amp": False, "channels_last": False},
                                          train={"max_steps_per_epoch": 3}))
    fit_and_calibrate(det, SPEC)
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    scores = det.score(test, keep_maps=0)
    report = bench.detect_report(det, scores, test)
    normal = scores.labels == 0
    assert report["largest_score_difference_from_eval"] < 1e-5 and report["normal_frames"] == int(normal.sum())
    assert report["false_alarm_rate"] == pytest.approx(float((scores.calibrated[normal] >= det.threshold_).mean()))


def test_the_table_gives_each_seed_and_the_setting(bench):
    row = {"false_alarm_rate": 0.014, "per_video_max": 0.04, "f1": 0.8, "calibrated_frame_auroc": 0.96,
           "frame_auroc_per_video_minmax": 0.95, "detect": {"false_alarm_rate": 0.011}}
    result = {"data": "synthetic", "overrides": {"test.relative": 128},
              "rows": [{**row, "calibration_videos": ["02", "04"], "calibrated_frame_auroc_videos_with_normal": 0.9,
                        "frame_auroc_per_video_minmax_videos_with_normal": 0.85},
                       {**row, "f1": 0.7, "calibration_videos": ["03", "07"]}]}  # a file from before those fields
    line = bench.table([result]).splitlines()[-1]
    assert line == ("| synthetic | relative=128 | 2 | 1.4%, 1.4% | 1.1%, 1.1% | 4% | 0.800, 0.700 | 0.960, 0.960 | "
                    "0.950, 0.950 | 0.900, - | 0.850, - |")


def test_the_held_out_bound_alone_gets_a_row_of_its_own_where_the_trained_on_videos_raised_the_threshold(bench):
    row = {"false_alarm_rate": 0.0, "per_video_max": 0.0, "f1": 0.6, "calibrated_frame_auroc": 0.8,
           "frame_auroc_per_video_minmax": 0.85, "detect": {"false_alarm_rate": 0.0}, "calibration_videos": ["a"]}
    raised = {**row, "held_out_only": {"false_alarm_rate": 0.035, "per_video_max": 0.29, "f1": 0.62}}
    result = {"data": "ped2", "overrides": {}, "label": "defaults", "rows": [raised, row]}  # seed 2: not raised
    held, kept = bench.table([result]).splitlines()[-2:]
    assert held.startswith("| ped2 | defaults, held-out bound only | 1 | 3.5%, 0.0% | - | 29% | 0.620, 0.600 |")
    assert kept.startswith("| ped2 | defaults | 1 | 0.0%, 0.0% | 0.0%, 0.0% | 0% | 0.600, 0.600 |")
    alone = {**result, "rows": [row, row]}  # the bound never raised it: no second row
    assert len(bench.table([alone]).splitlines()) == 3


def test_the_auroc_over_videos_with_normal_frames_leaves_out_a_video_anomalous_throughout(bench):
    # video 0: normal 30 and 28 dB, anomalous 20 and 29; video 1 anomalous throughout
    stats = FrameStats(np.repeat([0, 1], [4, 2]), {"psnr": np.array([30.0, 20.0, 29.0, 28.0, 25.0, 24.0])})
    scores = SimpleNamespace(labels=np.array([0, 1, 1, 0, 1, 1]), video=stats.video, stats=stats,
                             calibrated=np.array([0.0, 1.0, 0.7, 0.6, 0.2, 0.3]))
    out = bench.auroc_breakdown(SimpleNamespace(scorer=lambda s: -s.psnr), scores)
    # calibrated, video 0 alone: both anomalous frames above both normal ones; pooled with video 1 it is 6/8
    assert out["calibrated_frame_auroc_videos_with_normal"] == pytest.approx(1.0)
    assert bench.auroc_with_normal_frames(np.arange(6.0), scores.labels, np.zeros(6)) == pytest.approx(0.75)
    # -PSNR on video 0: 3 of 4 pairs (29 dB sits above 28); the macro mean skips the one-class video 1
    assert out["frame_auroc_per_video_minmax_videos_with_normal"] == pytest.approx(0.75)
    assert out["frame_auroc_macro"] == pytest.approx(0.75) and out["calibrated_frame_auroc_macro"] == pytest.approx(1.0)


def test_a_scorer_setting_is_named_by_its_section_and_the_paper_auroc_is_the_trained_scorers(bench):
    assert bench._setting({"overrides": {"scorer.name": "contrast", "test.relative": 64}}) == \
        "scorer=contrast + relative=64"
    assert bench._calibration_videos({"rows": [{"calibration_videos": ["1", "2", "3"]}, {}]}) == "3"
    # without overrides, the checkpoints' own calibration: frame by frame (before test.smooth) or today's defaults
    assert bench._setting({"rows": [{"relative": 0, "threshold_over": "frames"}]}) == "former defaults"
    assert bench._setting({"rows": [{"smooth": 3, "relative": 128, "threshold_over": "videos"}]}) == "defaults"
    # the paper's per-video min-max AUROC comes from the checkpoint's own scorer (PSNR here), whatever scored
    trained = SimpleNamespace(scorer=lambda stats: -stats.psnr)
    stats = FrameStats(np.array([0, 0, 0, 0]), {"psnr": np.array([30.0, 20.0, 29.0, 28.0])})
    scores = SimpleNamespace(labels=np.array([0, 1, 1, 0]), stats=stats)
    # anomalous 20 and 29 against normal 30 and 28: three of the four pairs ranked right (29 is above 28)
    assert bench.paper_auroc(trained, scores) == pytest.approx(0.75)


def test_each_test_video_is_scored_at_its_own_cameras_threshold(bench, tmp_path):
    data, footage = "scenes:train=3,test=2,frames=20,test_frames=40", "scenes:train=4,frames=20,test=2,camera={k}"
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 3}))
    det.fit(data)
    det.calibrate(data)
    path = det.save(tmp_path / "checkpoint.pt")
    report = bench.per_camera_report(path, {}, data, footage)
    assert report["calibration_videos"] == [4] and set(report["per_video"]) == {"01", "02"}
    # By hand: video 2 alone, calibrated on camera 2's four videos; the pooled rate weighs each video's normal frames
    own = memad.load(path)
    own.calibrate(footage.format(k=2), videos=["01", "02", "03", "04"])
    test = memad.data.open_split(data, "testing", own.config)
    scores = own.score(test.video(1), keep_maps=0)
    normal = scores.labels == 0
    assert report["per_video"]["02"] == pytest.approx(float((scores.calibrated[normal] >= own.threshold_).mean()))
    counts = [int((test.video(i).labels[own.network.score_offset:] == 0).sum()) for i in range(2)]
    pooled = (report["per_video"]["01"] * counts[0] + report["per_video"]["02"] * counts[1]) / sum(counts)
    assert report["false_alarm_rate"] == pytest.approx(pooled)
    assert 0.0 <= report["f1"] <= 1.0 and 0.0 <= report["calibrated_frame_auroc"] <= 1.0
