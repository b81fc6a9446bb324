"""memad detect: per-frame scores and decisions, events, annotated video and report for files, frame folders
and folders of videos; bad inputs named; an interrupted live run flushes what it wrote."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
from PIL import Image

import memad
import memad.reports.detect
from memad.cli import main
from memad.data.footage import Footage
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.data.video_files import decode_video, write_video
from memad.reports.detect import DetectOptions, run_footage

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=30)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 4}))
    fit_and_calibrate(det, SPEC)
    path = det.save(tmp_path_factory.mktemp("ckpt") / "pred.pt")
    test = make_synthetic("testing", (32, 32), 3, 32, SPEC)
    return path, test


def _video_frames(test, i: int, size: int = 48) -> np.ndarray:
    frames = test.video(i).frames.permute(0, 2, 3, 1).numpy()
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


def test_detect_on_a_video_file_writes_every_output(checkpoint, tmp_path, capsys):
    path, test = checkpoint
    video = write_video(tmp_path / "clip.mp4", _video_frames(test, 0), fps=10)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="resizing them to the model's 32x32"):  # 48x48 frames: resized, one warning
        assert main(["detect", str(path), str(video), "--out", str(out), "--smoothing", "1", "--release", "0"]) == 0
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [int(r["frame"]) for r in rows] == list(range(4, 30))  # the first 4 frames feed the first clip
    jsonl = [json.loads(line) for line in open(out / "scores.jsonl")]
    assert [j["frame"] for j in jsonl] == [int(r["frame"]) for r in rows]
    det = memad.load(path)
    assert all((float(r["score"]) >= det.threshold_) == bool(int(r["anomalous"])) for r in rows)  # smoothing 1, no hysteresis
    events = json.loads((out / "events.json").read_text())
    assert all(e["start"] <= e["peak_frame"] <= e["end"] for e in events)
    frames, fps = decode_video(out / "annotated.mp4")
    assert len(frames) == len(rows) and fps == 10
    html = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in html and '"threshold"' in html
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_scored"] == 26 and summary["policy"] == "block" and not summary["interrupted"]
    assert json.loads((out / "detect.json").read_text())["input"] == str(video)


def test_a_folder_of_videos_gets_one_folder_each_and_a_frame_folder_works(checkpoint, tmp_path):
    path, test = checkpoint
    videos = tmp_path / "videos"
    for i in range(2):
        write_video(videos / f"cam{i}.avi", _video_frames(test, i, 32), fps=25)
    det = memad.load(path)
    summary = memad.reports.detect.detect(det, str(videos), tmp_path / "out", options=DetectOptions(video=False),
                                          progress=False)
    assert [s["video"] for s in summary["summaries"]] == ["cam0", "cam1"]
    assert all((tmp_path / "out" / name / "scores.csv").is_file() for name in ("cam0", "cam1"))
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, f in enumerate(_video_frames(test, 1, 32)):
        Image.fromarray(f).save(frames / f"{k:03d}.png")
    summary = memad.reports.detect.detect(det, str(frames), tmp_path / "out2", options=DetectOptions(html=False),
                                          progress=False)
    # lossless PNG frames at the model's size: the scores are the offline calibrated ones
    offline = det.score(test.video(1))
    rows = list(csv.DictReader(open(tmp_path / "out2" / "scores.csv")))
    np.testing.assert_allclose([float(r["score"]) for r in rows], offline.calibrated, rtol=1e-5)


def test_an_output_folder_of_another_run_is_refused_unless_overwrite(checkpoint, tmp_path, capsys):
    path, test = checkpoint
    video = write_video(tmp_path / "clip.avi", _video_frames(test, 0, 32))
    out = tmp_path / "out"
    assert main(["detect", str(path), str(video), "--out", str(out), "--no-video", "--no-html"]) == 0
    capsys.readouterr()
    assert main(["detect", str(path), str(video), "--out", str(out)]) == 2
    assert f"already holds the detect run of {str(video)!r}; choose another folder or pass --overwrite" in \
        capsys.readouterr().err
    assert main(["detect", str(path), str(video), "--out", str(out), "--overwrite", "--no-video"]) == 0


def test_bad_inputs_are_named(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    uncalibrated = memad.build("ae", **tiny()).save(tmp_path / "ae.pt")
    cases = [
        ([str(uncalibrated), str(tmp_path)], "is not calibrated, which memad detect needs: run `memad calibrate"),
        ([str(path), str(tmp_path / "nothing.mp4")], "no such file or folder; expected a video file"),
        ([str(path), "7"], "camera 7 (/dev/video7): no such camera"),
    ]
    for args, message in cases:
        assert main(["detect", *args, "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    t0 = time.perf_counter()
    assert main(["detect", str(path), "rtsp://127.0.0.1:9/stream", "--timeout", "3", "--out", str(tmp_path / "o")]) == 2
    assert "rtsp://127.0.0.1:9/stream: cannot open as a video" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 15  # refused or timed out within the stated timeout, not hung


def test_an_interrupted_live_run_keeps_everything_written_so_far(checkpoint, tmp_path):
    path, test = checkpoint
    frames = _video_frames(test, 0, 32)

    def camera():
        for k, f in enumerate(frames):
            if k == 20:
                raise KeyboardInterrupt  # Ctrl-C
            yield f

    det = memad.load(path)
    live = Footage("camera0", "0", True, 25.0, None, camera)
    printed = []
    with pytest.raises(KeyboardInterrupt):
        run_footage(det, live, tmp_path / "out", DetectOptions(policy="block"), echo=printed.append, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "out" / "scores.csv")))
    assert [int(r["frame"]) for r in rows] == list(range(4, 20))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] and summary["frames_scored"] == 16
    assert (tmp_path / "out" / "annotated.mp4").is_file() and (tmp_path / "out" / "report.html").is_file()
    assert len(printed) == summary["events"]  # a live run prints each event as it closes


def test_a_calibration_whose_videos_disagree_is_said_by_detect_and_in_its_report(checkpoint, tmp_path):
    path, test = checkpoint
    video = write_video(tmp_path / "clip.avi", _video_frames(test, 0, 32))
    det = memad.load(path)
    asked = det.calibration_["false_alarm_rate"]
    det.calibration_ = {**det.calibration_, "check_false_alarm_rate": asked + 0.30, "check_per_video": {"a": 0.6}}
    with pytest.warns(UserWarning, match=r"videos disagree: .* flagged 31.0% of its normal frames \(a 60%\)"):
        memad.reports.detect.detect(det, str(video), tmp_path / "out", options=DetectOptions(video=False),
                                    progress=False)
    caveat = json.loads((tmp_path / "out" / "detect.json").read_text())["calibration_caveat"]
    assert caveat.startswith("the calibration videos disagree") and json.dumps(caveat)[1:-1] in \
        (tmp_path / "out" / "report.html").read_text()
    # within the margin: nothing said
    det.calibration_ = {**det.calibration_, "check_false_alarm_rate": asked + 0.04}
    memad.reports.detect.detect(det, str(video), tmp_path / "out2", options=DetectOptions(video=False, html=False),
                                progress=False)
    assert json.loads((tmp_path / "out2" / "detect.json").read_text())["calibration_caveat"] is None
