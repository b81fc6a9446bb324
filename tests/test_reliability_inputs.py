"""Frames of every kind through the one door, tampered or malformed exports, stream timeouts, the frame cache's
permissions and worker errors: each handled as docs/reliability.md says, with one line naming what and where."""

from __future__ import annotations

import base64
import copy
import io
import json
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic
from memad.data.video_files import decode_video, open_video, write_video
from memad.frames import FrameReader, as_video

from .conftest import fit_and_calibrate, tiny

SPEC = SyntheticSpec(train_videos=3, test_videos=2, frames_per_video=24)


@pytest.fixture(scope="module")
def calibrated():
    det = memad.build("mnad_pred", **tiny(train={"max_steps_per_epoch": 3}))
    fit_and_calibrate(det, SPEC)
    return det, make_synthetic("testing", (32, 32), 3, 32, SPEC)


def _hwc(video) -> list[np.ndarray]:
    return [f.permute(1, 2, 0).numpy() for f in video.frames]


# -- frames of every kind ------------------------------------------------------------------------------------
def test_float_frames_in_zero_one_score_as_their_uint8_frames(calibrated):
    det, test = calibrated
    as_uint8 = _hwc(test.video(0))[:10]
    as_float = [f.astype(np.float64) / 255 for f in as_uint8]
    np.testing.assert_allclose([r.score for r in det.stream(as_float)], [r.score for r in det.stream(as_uint8)])


def test_model_range_floats_are_read_when_said_so(calibrated):
    det, test = calibrated
    frames = test.video(0).frames[:8]
    model_range = [f.float() / 127.5 - 1 for f in frames]
    with pytest.raises(memad.DataError, match=r"stream frame 0: float frames are read in \[0, 1\]"):
        list(det.stream(model_range))
    np.testing.assert_allclose([r.score for r in det.stream(model_range, float_range=(-1, 1))],
                               [r.score for r in det.stream(list(frames))], atol=1e-6)


@pytest.mark.parametrize("frame, message", [
    (np.zeros((32, 32, 3), bool), "stream frame 0: bool frames (a mask?) are not images"),
    (None, "stream frame 0: expected an image (numpy array, torch tensor or PIL image), got NoneType"),
    ("frame.png", "stream frame 0: expected an image (numpy array, torch tensor or PIL image), got str"),
    (np.zeros((0, 0, 3), np.uint8), "stream frame 0: an empty frame (0x0 pixels)"),
    (np.full((32, 32, 3), 300, np.int64), "stream frame 0: int64 frames must hold 8-bit values 0..255, got 300 to 300"),
])
def test_frames_that_are_not_images_are_named(calibrated, frame, message):
    det, _ = calibrated
    with pytest.raises(memad.DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        list(det.stream([frame] * 6))


def test_sixteen_bit_and_wide_integer_frames_are_scaled_not_clipped():
    reader = FrameReader(1, (2, 2), source="s")
    assert reader(np.full((2, 2), 65535, np.uint16), 0).tolist() == [[[255, 255], [255, 255]]]
    assert reader(np.full((2, 2), 32896, np.uint16), 1).tolist() == [[[128, 128], [128, 128]]]  # 32896 / 257
    assert reader(np.full((2, 2), 200, np.int64), 2).tolist() == [[[200, 200], [200, 200]]]


def test_a_sixteen_bit_png_decodes_to_its_picture_not_white(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "000.png")  # a 16-bit grey PNG
    with Image.open(tmp_path / "000.png") as img:
        frame = FrameReader(1, (8, 8))(img, 0)[0].numpy()
    assert frame.max() < 255 and len(np.unique(frame)) > 30  # a ramp, not a constant 255
    np.testing.assert_array_equal(frame, np.clip(np.rint(ramp / 257), 0, 255))


def test_nan_in_a_streamed_frame_names_that_frame(calibrated):
    det, test = calibrated
    frames = [f.astype(np.float32) / 255 for f in _hwc(test.video(0))[:10]]
    frames[6][3, 3, 1] = np.nan
    with pytest.raises(memad.DataError, match=r"^stream frame 6: 1 values are NaN or infinite$"):
        list(det.stream(frames))


def test_a_stack_with_nan_names_its_frame():
    frames = np.zeros((5, 3, 4, 4), np.float32)
    frames[3, 0, 0, 0] = np.nan
    with pytest.raises(memad.DataError, match=r"video: 1 values are NaN or infinite \(first in frame 3\)"):
        as_video(frames, 3, (4, 4), source="video")


def _ts_segment(path, size: int, frames: int) -> bytes:
    import av

    container = av.open(str(path), "w", format="mpegts")
    stream = container.add_stream("libx264", rate=10)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    for _ in range(frames):
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((size, size, 3), 100, np.uint8), "rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path.read_bytes()


def test_a_video_whose_frame_size_changes_part_way_warns_once(tmp_path):
    # Two MPEG-TS segments of other resolutions, one after the other: a stream that switches size (as adaptive
    # streams do); memad's own writer refuses to write one.
    path = tmp_path / "switch.ts"
    path.write_bytes(_ts_segment(tmp_path / "a.ts", 32, 4) + _ts_segment(tmp_path / "b.ts", 48, 4))
    with pytest.warns(UserWarning, match="frame 4 is 48x48 \\(height x width\\), the frames before it 32x32"):
        decoded, _ = decode_video(path, (16, 16))
    assert decoded.shape == (8, 3, 16, 16)


def test_masks_of_another_size_than_their_frames_are_an_error_naming_both(tmp_path):
    root = tmp_path / "data"
    for split in ("training", "testing"):
        folder = root / split / "frames" / "01"
        folder.mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((24, 32, 3), 100, np.uint8)).save(folder / f"{i:03d}.png")
    masks = root / "testing" / "masks" / "01"
    masks.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.zeros((12, 16), np.uint8)).save(masks / f"{i:03d}.png")
    config = memad.config.make_config("ae", {"data.image_size": 32})
    with pytest.raises(memad.DataError, match=r"000.png: the mask is 16x12 \(width x height\), the frames of video "
                                              r"'01' are 32x24; expected masks the size of their frames"):
        memad.data.open_split(root, "testing", config)


# -- exports: tampered or malformed metadata -----------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(calibrated, tmp_path_factory):
    det, _ = calibrated
    path = tmp_path_factory.mktemp("export") / "pred.onnx"
    det.export(path)
    return path


def _edited(path, tmp_path, edit):
    import onnx

    proto = onnx.load(str(path))
    prop = next(p for p in proto.metadata_props if p.key == "memad-export")
    prop.value = edit(prop.value)
    out = tmp_path / "edited.onnx"
    onnx.save(proto, str(out))
    return out


def _meta(edit):
    def apply(text: str) -> str:
        meta = json.loads(text)
        edit(meta)
        return json.dumps(meta)
    return apply


def _pickled_state(meta):
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    meta["state"][0] = base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("edit, message", [
    (_meta(lambda m: m.update(threshold=1000.0)), "the metadata's threshold was changed after export"),
    (_meta(lambda m: m["config"]["data"].update(image_size=64)), "the metadata's config was changed after export"),
    (_meta(lambda m: m.pop("check")), "the export's metadata lacks 'check'"),
    (lambda text: text[:-5], "the export's metadata is not JSON"),
    (_meta(_pickled_state), "the metadata's state was changed after export"),
    (_meta(lambda m: m["calibration"]["signals"]["psnr"].__setitem__(0, 0.0)),
     "the metadata's calibration was changed after export"),
])
def test_an_edited_or_malformed_export_is_refused_in_one_line(exported, tmp_path, edit, message):
    path = _edited(exported, tmp_path, edit)
    with pytest.raises(memad.CheckpointError, match="refused") as info:
        memad.scoring.exported.load_exported(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_pickle_in_the_state_is_refused_even_with_its_digest_recomputed(exported, tmp_path):
    from memad.scoring.export_meta import seal

    def forge(text):
        meta = json.loads(text)
        _pickled_state(meta)
        return json.dumps(seal(meta))

    with pytest.raises(memad.CheckpointError, match="state 'items': not a plain .npy array"):
        memad.scoring.exported.load_exported(_edited(exported, tmp_path, forge))  # np.load never unpickles it


def test_the_untouched_export_loads_and_scores_as_pytorch_in_fp32(calibrated, exported):
    det, test = calibrated
    model = memad.scoring.exported.load_exported(exported)
    fp32 = copy.deepcopy(det)
    fp32.config["test"].update(amp=False, channels_last=False)  # the export computes in fp32
    frames = list(test.video(0).frames[:12])
    np.testing.assert_allclose([r.score for r in model.stream(frames)],
                               [r.score for r in fp32.stream(frames, device="cpu")], atol=1e-4)


# -- stream timeouts ------------------------------------------------------------------------------------------
class _Server:
    """A TCP server on localhost that accepts and then stays silent, or sends one byte a second."""

    def __init__(self, drip: bool):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.drip, self.stop = drip, False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        try:
            while not self.stop:
                if self.drip:
                    conn.send(b"x")
                time.sleep(1.0)
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.mark.parametrize("drip", [False, True], ids=["silent", "one-byte-a-second"])
def test_a_stream_that_does_not_answer_is_a_timeout_within_the_time_given(drip):
    server = _Server(drip)
    try:
        t0 = time.monotonic()
        with pytest.raises(memad.DataError, match=r"no video within 2 s \(--timeout\)"):
            open_video(f"http://127.0.0.1:{server.port}/stream", timeout=2)
        assert time.monotonic() - t0 < 8  # the hard-coded 30 s are gone
    finally:
        server.close()


# -- the frame cache ------------------------------------------------------------------------------------------
def test_a_read_only_cache_folder_without_the_split_is_one_line(tmp_path, monkeypatch):
    import os

    cache = tmp_path / "cache"
    cache.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(cache) else real(p, mode))
    root = tmp_path / "vids"
    (root / "training" / "videos").mkdir(parents=True)
    write_video(root / "training" / "videos" / "01.avi", np.zeros((8, 32, 32, 3), np.uint8))
    config = memad.config.make_config("ae", {"data.image_size": 32, "data.in_memory": False,
                                             "data.cache_dir": str(cache)})
    with pytest.raises(memad.DataError, match="cannot be written \\(permission denied\\); make it writable"):
        memad.data.open_split(root, "training", config)


def test_an_error_in_a_dataloader_worker_is_its_own_one_line(tmp_path, monkeypatch):
    from memad.data import clips

    root = tmp_path / "vids"
    (root / "training" / "videos").mkdir(parents=True)
    write_video(root / "training" / "videos" / "01.avi", np.zeros((12, 32, 32, 3), np.uint8))
    config = memad.config.make_config("ae", {"data.image_size": 32, "data.in_memory": False,
                                             "data.cache_dir": str(tmp_path / "cache")})
    videos = memad.data.open_split(root, "training", config)

    def broken(self, item):
        raise memad.DataError(f"{videos.store.path}: truncated while reading (expected 12 frames)")

    monkeypatch.setattr(clips._ClipReader, "__getitem__", broken)
    batches = clips.ClipBatches(videos, 1, 2, seed=0, device=torch.device("cpu"), workers=1)
    with pytest.raises(memad.DataError) as info:
        next(iter(batches.epoch(0)))
    assert str(info.value) == f"{videos.store.path}: truncated while reading (expected 12 frames)"
    batches.close()
