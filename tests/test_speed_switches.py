"""Speed switches (channels-last, torch.compile, the sync-free test-time gate) keep the results."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import memad
from memad import runtime
from memad.data.synthetic import make_synthetic
from memad.data.videos import VideoSet
from memad.runtime import prepare_model, uses_channels_last
from tests.conftest import tiny


def _first_frames(videos: VideoSet, count: int, frames: int) -> VideoSet:
    """The first ``frames`` frames of the first ``count`` videos (sequential scoring is per frame: keep it short)."""
    keep = np.concatenate([off + np.arange(min(frames, n)) for off, n in
                           zip(videos.offsets[:count], videos.lengths[:count])])
    idx = torch.from_numpy(keep)
    return VideoSet(videos.frames[idx], videos.names[:count], [min(frames, n) for n in videos.lengths[:count]],
                    None if videos.labels is None else videos.labels[keep],
                    None if videos.masks is None else videos.masks[idx], videos.source)


@pytest.fixture(scope="module")
def small_data() -> tuple[VideoSet, VideoSet]:
    train = make_synthetic("training", (32, 32), channels=3)
    test = make_synthetic("testing", (32, 32), channels=3)
    return _first_frames(train, 2, 60), _first_frames(test, 2, 16)


def _train_and_score(preset: str, data: tuple[VideoSet, VideoSet], **train_extra):
    det = memad.build(preset, **tiny(train={"max_steps_per_epoch": 6, **train_extra}))
    det.fit(data[0])
    return det, det.score(data[1])


def test_channels_last_setting_per_device():
    assert uses_channels_last({"channels_last": "auto"}, torch.device("cuda")) is True
    assert uses_channels_last({"channels_last": "auto"}, torch.device("cpu")) is False
    assert uses_channels_last({"channels_last": True}, torch.device("cpu")) is True
    assert uses_channels_last({"channels_last": False}, torch.device("cuda")) is False


def test_scoring_switches_per_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(runtime, "native_cpu_bf16", lambda native=native: native)
        assert runtime.scoring_amp({"amp": "auto"}, cpu) is native  # bf16 only where the CPU has it natively
        assert runtime.scoring_amp({"amp": "auto"}, cuda) is True
    assert runtime.scoring_amp({"amp": False}, cuda) is False
    assert runtime.scoring_amp({"amp": True}, cpu) is True
    assert runtime.scoring_channels_last({"channels_last": "auto"}, cpu) is True
    assert runtime.scoring_channels_last({"channels_last": "auto"}, torch.device("meta")) is False
    assert runtime.scoring_channels_last({"channels_last": False}, cuda) is False


def test_native_cpu_bf16_agrees_with_the_cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line.split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags on this machine")
    if "amx_bf16" in flags or "avx512_bf16" in flags:  # a CPU the kernel says has them is detected
        assert runtime.native_cpu_bf16() is True
    elif not any(f.startswith(("amx", "avx512")) for f in flags):  # an AVX2-only CPU (Zen 3...) is not
        assert runtime.native_cpu_bf16() is False


def test_the_memory_reads_in_fp32_inside_bf16_autocast():
    det = memad.build("mnad_pred", **tiny()).eval()
    seen = {}
    det.memory.register_forward_hook(lambda m, args, out: seen.update(query=args[0].dtype, read=out.read.dtype))
    det.encoder.register_forward_hook(lambda m, args, out: seen.update(features=out[-1].dtype))
    x = torch.rand(1, det.config["data"]["frames"] * 3, 32, 32) * 2 - 1
    with torch.no_grad(), runtime.autocast(torch.device("cpu"), True):
        out = det(x)
    assert seen == {"features": torch.bfloat16, "query": torch.float32, "read": torch.float32}
    assert out.output.dtype == torch.bfloat16  # the decoder's convolutions still run in bf16


def test_bf16_scoring_keeps_the_memory_fp32_and_scores_close(small_data):
    det, _ = _train_and_score("mnad_pred", small_data)
    trained = {k: v.clone() for k, v in det.memory.state_dict().items()}
    scores = {}
    for amp in (False, True):
        det.memory.load_state_dict(trained)
        det.config["test"].update(amp=amp, channels_last=amp)
        scores[amp] = det.score(small_data[1])
        assert all(v.dtype == torch.float32 for v in det.memory.state_dict().values())
    psnr = {k: s.stats["psnr"] for k, s in scores.items()}
    assert np.abs(psnr[True] - psnr[False]).max() < 0.5  # dB: bf16 rounding, not another model


@pytest.mark.parametrize("preset", ["mnad_pred", "mnad_recon"])
def test_channels_last_one_step_matches(preset):
    torch.manual_seed(3)
    plain = memad.build(preset, **tiny())
    nhwc = memad.build(preset, **tiny())
    nhwc.load_state_dict(plain.state_dict())
    nhwc.to(memory_format=torch.channels_last)
    x = torch.rand(2, plain.config["data"]["frames"] * 3, 32, 32) * 2 - 1
    grads = []
    for det, batch in ((plain, x), (nhwc, x.contiguous(memory_format=torch.channels_last))):
        out = det(batch)
        (out.output.pow(2).mean() + out.memory.loss).backward()
        grads.append({n: p.grad for n, p in det.network.named_parameters()})
        grads[-1]["output"] = out.output.detach()
        grads[-1]["items"] = det.memory.items
    for name, value in grads[0].items():
        torch.testing.assert_close(grads[1][name], value, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("preset", ["mnad_pred"])
def test_channels_last_keeps_losses_and_scores(preset, small_data):
    plain, plain_scores = _train_and_score(preset, small_data, channels_last=False)
    nhwc, nhwc_scores = _train_and_score(preset, small_data, channels_last=True)
    conv = next(m for m in nhwc.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # Same arithmetic in another memory layout: float32 sums round differently, and Adam's
    # first steps (update ~ sign of the gradient) amplify that a little over a few steps.
    for a, b in zip(plain.history_, nhwc.history_):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-3)
    np.testing.assert_allclose(nhwc_scores.stats.psnr, plain_scores.stats.psnr, rtol=2e-3)
    # Items follow argmax assignments, so a query near a tie may join another item in one
    # layout: a few entries move by a few hundredths, the bulk stays put.
    diff = np.abs(nhwc.memory.items.numpy() - plain.memory.items.numpy())
    assert diff.mean() < 5e-3 and diff.max() < 0.1


def test_channels_last_checkpoint_loads_into_plain_model(tmp_path, small_data):
    det, _ = _train_and_score("mnad_pred", small_data, channels_last=True)
    path = det.save(tmp_path / "nhwc.pt")
    loaded = memad.load(path)
    for name, value in det.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


def _single_frame_query(dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(1, dim, 2, 2, generator=g), dim=1)


@pytest.mark.parametrize("rule", ["mnad", "mnad_code", "ema"])
def test_sequential_gate_write_matches_the_rule(rule):
    det = memad.build("mnad_pred", **tiny(memory={"update": rule}))
    memory = det.memory
    query = _single_frame_query(memory.dim, 1)
    before = memory.items.clone()
    expected = memory.update_rule(before, memory._flat(query))

    memory.write(query, torch.tensor([False]))
    torch.testing.assert_close(memory.items, before, rtol=0, atol=0)
    memory.write(query, torch.tensor([True]))
    torch.testing.assert_close(memory.items, expected)


def test_batched_gate_write_uses_only_kept_frames():
    det = memad.build("mnad_pred", **tiny())
    memory = det.memory
    queries = torch.cat([_single_frame_query(memory.dim, s) for s in range(3)])
    keep = torch.tensor([True, False, True])
    before = memory.items.clone()
    expected = memory.update_rule(before, memory._flat(queries[[0, 2]]))
    memory.write(queries, keep)
    torch.testing.assert_close(memory.items, expected)
    memory.write(queries, torch.tensor([False, False, False]))
    torch.testing.assert_close(memory.items, expected)


def test_batched_chunk_one_equals_sequential(small_data):
    det, seq = _train_and_score("mnad_pred", small_data)
    det.config["test"].update(mode="batched", chunk=1)
    one = det.score(small_data[1])
    np.testing.assert_allclose(one.scores, seq.scores, rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(os.environ.get("MEMAD_TEST_COMPILE") != "1",
                    reason="torch.compile takes a minute on CPU; set MEMAD_TEST_COMPILE=1 to run")
def test_compile_keeps_outputs_and_parameter_names():
    det = memad.build("mnad_pred", **tiny())
    names = list(det.state_dict())
    x = torch.rand(2, 12, 32, 32) * 2 - 1
    det.eval()
    with torch.no_grad():
        eager = det(x).output
    det.config["train"]["compile"] = True
    prepare_model(det, det.config["train"], torch.device("cpu"), compiled=(det.encoder, det.decoder))
    with torch.no_grad():
        compiled = det(x).output
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    assert list(det.state_dict()) == names
    prepare_model(det, det.config["train"], torch.device("cpu"), compiled=(det.encoder, det.decoder))  # a second call does not wrap again
    assert det.encoder._compiled_call_impl is not None
