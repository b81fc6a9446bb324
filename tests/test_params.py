"""The paper's architecture: parameter counts equal the official code's exactly."""

import pytest
import torch

import memad


@pytest.mark.parametrize(
    "preset, encoder, decoder, total",
    [
        ("mnad_pred", 4_694_400, 10_957_443, 15_651_843),
        ("mnad_recon", 4_689_216, 12_507_075, 17_196_291),
    ],
)
def test_official_parameter_counts(preset, encoder, decoder, total):
    counts = memad.build(preset).count_parameters()
    assert counts == {"encoder": encoder, "memory": 0, "decoder": decoder, "total": total}


def test_ae_decoder_takes_the_bare_bottleneck():
    det = memad.build("ae")
    first = det.decoder.entry[0]
    assert first.in_channels == 512  # no memory read concatenated
    # mnad_recon's decoder minus the 512 extra input channels of its first conv
    assert det.count_parameters()["decoder"] == 12_507_075 - 512 * 512 * 9


@pytest.mark.parametrize("preset, frames", [("mnad_pred", 4), ("mnad_recon", 1)])
def test_output_shape_and_range(preset, frames):
    det = memad.build(preset, data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]}).eval()
    x = torch.randn(2, 3 * frames, 32, 32)
    out = det(x)
    assert out.output.shape == (2, 3, 32, 32)
    assert out.output.abs().max() <= 1
    assert out.memory.read.shape == (2, 128, 4, 4)  # concat[query, read] at 1/8 resolution
