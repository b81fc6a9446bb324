"""timm backbones as encoders: sizes from feature_info, both tasks, local weights files, no downloads."""

import pytest
import timm
import torch

import memad
from memad_plugins.timm_backbone.encoder import TimmEncoder

from .conftest import tiny


def _timm_config(model: str, preset: str = "mnad_pred", **encoder):
    overrides = tiny()
    overrides["encoder"] = {"name": "timm", "model": model, **encoder}
    return memad.build(preset, **overrides)


@pytest.mark.parametrize("model", ["resnet18", "convnext_atto"])
@pytest.mark.parametrize("preset, frames", [("mnad_pred", 4), ("mnad_recon", 1)])
def test_timm_families_in_both_tasks(model, preset, frames):
    det = _timm_config(model, preset)
    info = timm.create_model(model, features_only=True, pretrained=False, in_chans=3 * frames).feature_info
    assert det.encoder.channels == info.channels()
    assert det.encoder.reductions == info.reduction()
    # frames stacked on channels enter through in_chans
    first_conv = next(m for m in det.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 3 * frames
    x = torch.rand(2, 3 * frames, 32, 32) * 2 - 1
    out = det(x)
    assert out.output.shape == (2, 3, 32, 32)
    # the memory reads the deepest map: 1/32 of 32 pixels for both families
    assert out.memory.read.shape == (2, 2 * info.channels()[-1], 1, 1)
    (out.output.mean() + out.memory.loss).backward()
    assert first_conv.weight.grad is not None


def test_out_indices_pick_levels():
    det = _timm_config("resnet18", out_indices=[1, 2, 3])
    assert det.encoder.channels == [64, 128, 256] and det.encoder.reductions == [4, 8, 16]
    assert det.memory.items.shape[1] == 256
    assert det(torch.zeros(1, 12, 32, 32)).output.shape == (1, 3, 32, 32)


def _forbid_downloads(monkeypatch):
    import timm.models._builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("timm tried to download weights")

    for name in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file"):
        if hasattr(builder, name):
            monkeypatch.setattr(builder, name, refuse)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file_is_loaded(tmp_path, monkeypatch, suffix):
    _forbid_downloads(monkeypatch)
    torch.manual_seed(3)
    source = timm.create_model("resnet18", pretrained=False).state_dict()  # classifier included
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(source, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    enc3 = TimmEncoder(in_channels=3, model="resnet18", weights=str(path))
    got = enc3.body.state_dict()
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.running_var"):
        torch.testing.assert_close(got[key], source[key])
    # 4 stacked frames: timm repeats the RGB kernel over the 12 channels and scales it by 3/12
    enc12 = TimmEncoder(in_channels=12, model="resnet18", weights=str(path))
    torch.testing.assert_close(enc12.body.state_dict()["conv1.weight"], source["conv1.weight"].repeat(1, 4, 1, 1) / 4)
    torch.testing.assert_close(enc12.body.state_dict()["layer3.0.conv2.weight"], source["layer3.0.conv2.weight"])


def test_random_init_differs_from_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    torch.manual_seed(1)
    plain = TimmEncoder(in_channels=3, model="resnet18")
    loaded = TimmEncoder(in_channels=3, model="resnet18", weights=str(path))
    assert not torch.equal(plain.body.state_dict()["layer1.0.conv1.weight"],
                           loaded.body.state_dict()["layer1.0.conv1.weight"])


class _NotAWeight:
    pass


def test_weights_file_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _NotAWeight()}, path)
    with pytest.raises((memad.ConfigError, ValueError), match="evil.pth.*(weights_only|Unsupported global)"):
        TimmEncoder(in_channels=3, model="resnet18", weights=str(path))


def test_weights_of_another_model_are_rejected(tmp_path):
    path = tmp_path / "effnet.pth"
    torch.save(timm.create_model("efficientnet_b0", pretrained=False).state_dict(), path)
    with pytest.raises(memad.ConfigError, match="resnet18"):
        _timm_config("resnet18", weights=str(path))


def test_bad_names_and_paths_are_named():
    with pytest.raises(memad.ConfigError, match="unknown timm model 'resnet181'.*resnet18"):
        _timm_config("resnet181")
    with pytest.raises(memad.ConfigError, match="no such file '/nonexistent/w.pth'"):
        _timm_config("resnet18", weights="/nonexistent/w.pth")
    with pytest.raises(memad.ConfigError, match="in_chans"):
        _timm_config("resnet18", model_args={"in_chans": 3})


def test_timm_preset_trains_and_checkpoints(tmp_path):
    overrides = tiny(train={"max_steps_per_epoch": 2})
    overrides["encoder"] = {"out_indices": [0, 1, 2, 3]}  # the preset's timm encoder, no U-Net widths
    det = memad.build("mnad_pred_resnet18", **overrides)
    assert det.encoder.channels == [64, 64, 128, 256]
    det.fit("synthetic")
    assert det.history_ and det.history_[0]["loss"] > 0
    path = det.save(tmp_path / "r18.pt")
    again = memad.load(path)
    x = torch.rand(1, 12, 32, 32) * 2 - 1
    torch.testing.assert_close(again.eval()(x).output, det.eval()(x).output)
