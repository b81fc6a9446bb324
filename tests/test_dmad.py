"""DMAD-PDM: the codebook's assignment, losses and gradient update, the deformation module's warp, fields
and regularisers, the test-time errors, the background estimate and the score, each against a small case
computed by hand; and the dmad_pred preset built, fitted one step and evaluated on synthetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import memad
from memad_plugins.dmad.codebook import Codebook
from memad_plugins.dmad.layers import coordinate_channels
from memad_plugins.dmad.network import PDMDecoder
from memad_plugins.dmad.pdm import (
    OffsetNet,
    gradient_difference,
    magnitude_loss,
    scaled_window,
    smoothness_loss,
    warp,
    window_max,
)
from memad_plugins.dmad.scorer import DMADScorer, robust_smooth

from .conftest import tiny


def _codebook(items, **kw) -> Codebook:
    book = Codebook(in_channels=len(items[0]), items=len(items), **kw)
    with torch.no_grad():
        book.items.copy_(torch.tensor(items))
    return book


def _two_positions(z0, z1) -> torch.Tensor:
    return torch.tensor([z0, z1]).t().reshape(1, 2, 1, 2)  # (B=1, C=2, h=1, w=2)


def test_codebook_assigns_the_nearest_item_and_computes_its_losses_by_hand():
    book = _codebook([[1.0, 0.0], [0.0, -1.0], [2.0, 2.0]], commitment=0.25, weight=1.0, append_query=True)
    feats = _two_positions([0.9, 0.1], [0.2, -0.7])
    # squared distances: z0 -> (0.02, 1.62, 5.86), z1 -> (1.13, 0.13, 10.33): items 0 and 1
    assert book.assign(feats).tolist() == [[[0, 1]]]
    out = book(feats)
    mse = (0.1**2 + 0.1**2 + 0.2**2 + 0.3**2) / 4
    assert out.logs["codebook"].item() == pytest.approx(mse)
    assert out.logs["commitment"].item() == pytest.approx(mse)
    assert out.loss.item() == pytest.approx(mse + 0.25 * mse)
    assert out.distance.tolist() == pytest.approx([mse])
    # the decoder gets the items, then the latents themselves
    torch.testing.assert_close(out.read[0, :2, 0].t(), torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    torch.testing.assert_close(out.read[:, 2:], feats)
    assert book.out_channels(2) == 4 and Codebook(2, append_query=False).out_channels(2) == 2


def test_codebook_items_move_towards_their_latents_and_gradients_pass_straight_through():
    book = _codebook([[1.0, 0.0], [0.0, -1.0], [2.0, 2.0]], append_query=False)
    z = [[0.9, 0.1], [0.2, -0.7]]
    feats = _two_positions(*z).requires_grad_(True)
    out = book(feats)
    (out.loss + out.read.sum()).backward()
    # the codebook loss mean((e - sg z)^2) over 4 entries: d/de_k = 2 / 4 * sum of (e_k - z) over its latents
    lr = 0.5
    expected = book.items.detach().clone()
    expected[0] -= lr * 0.5 * (torch.tensor([1.0, 0.0]) - torch.tensor(z[0]))
    expected[1] -= lr * 0.5 * (torch.tensor([0.0, -1.0]) - torch.tensor(z[1]))
    torch.optim.SGD([book.items], lr=lr).step()
    torch.testing.assert_close(book.items.detach(), expected)  # item 2, unused, does not move
    # encoder side: 1 per read entry (straight through) + the commitment 0.25 * 2 / 4 * (z - e)
    commit = 0.25 * 0.5 * (torch.tensor(z) - torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    torch.testing.assert_close(feats.grad[0, :, 0].t(), 1 + commit)


def test_warp_by_one_pixel_shifts_the_image_and_half_a_pixel_averages():
    img = torch.arange(20.0).reshape(1, 1, 4, 5)
    right = torch.zeros(1, 4, 5, 2)
    right[..., 0] = 2 / (5 - 1)  # one column in grid_sample's normalised coordinates
    out = warp(img, right)
    torch.testing.assert_close(out[..., :4], img[..., 1:])
    torch.testing.assert_close(out[..., 4], img[..., 4])  # the grid is clamped to the image: the edge repeats
    down = torch.zeros(1, 4, 5, 2)
    down[..., 1] = 2 / (4 - 1)
    torch.testing.assert_close(warp(img, down)[:, :, :3], img[:, :, 1:])
    torch.testing.assert_close(warp(img, right / 2)[..., :4], (img[..., :4] + img[..., 1:]) / 2)
    torch.testing.assert_close(warp(img, torch.zeros(1, 4, 5, 2)), img)


def test_offset_net_fields_are_bounded_by_the_largest_displacement_in_pixels():
    net = OffsetNet(3, channels=8, max_offsets=(2.0, 3.0)).eval()
    with torch.no_grad():
        for headnet in (net.coarse, net.fine):
            headnet[-2].weight.zero_()
            headnet[-2].bias.fill_(50.0)  # tanh saturates at 1
    coarse, fine = net(torch.randn(2, 3, 16, 8))
    assert coarse.shape == fine.shape == (2, 16, 8, 2)
    torch.testing.assert_close(coarse[..., 0], torch.full((2, 16, 8), 2 * 2.0 / 8))  # x: 2 px of a width of 8
    torch.testing.assert_close(coarse[..., 1], torch.full((2, 16, 8), 2 * 2.0 / 16))
    torch.testing.assert_close(fine[..., 0], torch.full((2, 16, 8), 2 * 3.0 / 8))


def test_deformation_regularisers_by_hand():
    field = torch.zeros(1, 2, 2, 2)
    field[..., 0], field[..., 1] = 3.0, 4.0
    assert magnitude_loss(field).item() == pytest.approx(5.0)
    # one row [0, 1, 0] of summed components (0.25 + 0.75); kernel 3: weights (-1/2, 1, -1/2)
    spike = torch.zeros(1, 1, 3, 2)
    spike[0, 0, 1] = torch.tensor([0.25, 0.75])
    # along the row: |-0.5|, |1|, |-0.5|; along the (one-row) column: the values themselves, 0, 1, 0
    assert smoothness_loss(spike, 3).item() == pytest.approx((0.5 + 1 + 0.5 + 0 + 1 + 0) / 3)
    flat = torch.full((1, 5, 5, 2), 0.1)
    # a constant field costs only at the zero-padded borders
    assert smoothness_loss(flat, 3).item() > 0 and smoothness_loss(torch.zeros(1, 5, 5, 2), 3).item() == 0


def test_gradient_difference_and_window_errors_by_hand():
    target = torch.tensor([[[[1.0, 3.0]]], [[[2.0, 2.0]]]]).reshape(1, 2, 1, 2)  # two channels, one row
    output = torch.zeros_like(target)
    # channel sum d = [3, 5]; dx = [3, 2]; dy = [3, 5] (zero above the first row)
    torch.testing.assert_close(gradient_difference(output, target), torch.tensor([[[[6.0, 7.0]]]]))
    block = torch.zeros(2, 1, 4, 4)
    block[0, 0, 1:3, 1:3] = 1.0
    assert window_max(block, (2, 2)).tolist() == [1.0, 0.0]
    assert window_max(block, (2, 4)).tolist() == [0.5, 0.0]
    assert window_max(block[:, 0] * -1, (1, 1)).tolist() == [1.0, 0.0]  # absolute values, (B, H, W) accepted
    assert scaled_window([16, 14], (256, 256), 256) == (16, 14) and scaled_window([7, 18], (32, 32), 256) == (1, 2)


def test_coordinate_channels_match_the_official_formula_at_64_pixels():
    i = np.arange(64)
    cell = np.floor(i / (64 // 32)) / 31
    official_within, official_cell = 2 * (i / 63 - cell) - 1, 2 * cell - 1
    got = coordinate_channels(64, 64, 32).double()
    np.testing.assert_allclose(got[0, :, 0], official_within, atol=1e-12)
    np.testing.assert_allclose(got[1, :, 5], official_cell, atol=1e-12)
    np.testing.assert_allclose(got[2, 7, :], official_within, atol=1e-12)
    np.testing.assert_allclose(got[3, 0, :], official_cell, atol=1e-12)


def _decoder(**kw) -> PDMDecoder:
    return PDMDecoder([3, 8, 16, 32], [1, 1, 2, 4], 64, out_channels=1, task="prediction", frames=3,
                      image_size=(8, 8), offset_channels=8, **kw)


def _maps(b=1):
    torch.manual_seed(0)
    x = torch.rand(b, 3, 8, 8) * 2 - 1
    return [x, torch.randn(b, 8, 8, 8), torch.randn(b, 16, 4, 4)], torch.randn(b, 64, 2, 2)


def _freeze_fields(dec: PDMDecoder) -> None:
    with torch.no_grad():
        for headnet in (dec.offsets.coarse, dec.offsets.fine):
            headnet[-2].weight.zero_()
            headnet[-2].bias.zero_()


def test_output_is_the_prototype_under_the_mask_and_the_background_elsewhere():
    dec = _decoder().eval()
    _freeze_fields(dec)  # zero fields: the warps are the identity
    skips, bottleneck = _maps()
    with torch.no_grad():
        dec.background.param.fill_(0.25)
        proto = dec.prototype(skips, bottleneck)
        last = dec.mask_head[-2]
        last.weight.zero_()
        last.bias.fill_(50.0)  # mask 1
        torch.testing.assert_close(dec(skips, bottleneck).image, proto)
        last.bias.fill_(-50.0)  # mask 0
        torch.testing.assert_close(dec(skips, bottleneck).image, torch.full_like(proto, 0.25))


def test_decoder_loss_is_the_official_weighted_sum():
    dec = _decoder(magnitude=0.4, smooth=1.0, smooth_kernels=[7, 3], deformation=0.25).eval()
    skips, bottleneck = _maps(2)
    with torch.no_grad():
        out = dec(skips, bottleneck)
        coarse, fine = dec.offsets(skips[0])
        mag = 0.4 * (magnitude_loss(coarse) + magnitude_loss(fine))
        smooth = smoothness_loss(coarse, 7) + smoothness_loss(fine, 3)
    assert out.logs["magnitude"].item() == pytest.approx(mag.item(), rel=1e-5)
    assert out.logs["smoothness"].item() == pytest.approx(smooth.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(0.25 * (mag + smooth).item(), rel=1e-5)
    # deformation: the largest 1x1 (7x18 at 256 px, here 8 px) box mean of |coarse y|
    assert dec.offset_window == (1, 1)
    torch.testing.assert_close(out.signals["deformation"], coarse[..., 1].abs().flatten(1).amax(1))


def _spiky_output(dec: PDMDecoder):
    """Target: one bright pixel at (2, 3); output zero; single-warp output 0.5 at (5, 5); background 0.25."""
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 2, 3] = 1.0
    single = torch.zeros(1, 1, 8, 8)
    single[0, 0, 5, 5] = 0.5
    with torch.no_grad():
        dec.background.param.fill_(0.25)
    return memad.DecoderOutput(torch.zeros(1, 1, 8, 8), extras={"single_warp": single}), target


def test_target_losses_gradient_difference_of_both_outputs_by_hand():
    dec = _decoder()
    output, target = _spiky_output(dec)
    terms = dec.target_losses(output, target)
    # G(O, y): the spike's |dx| is 1 at (2, 3) and (2, 4), its |dy| 1 at (2, 3) and (3, 3): 4 over 64 pixels.
    # G(O1, y): the same 4, plus 0.5 four times for the -0.5 at (5, 5): 6 over 64. Official: G(O) + 0.25 G(O1).
    assert terms["gradient_difference"].item() == pytest.approx((4 + 0.25 * 6) / 64)
    weighted = _decoder(gradient=2.0, single_warp_gradient=0.5)
    assert weighted.target_losses(*_spiky_output(weighted))["gradient_difference"].item() == pytest.approx(
        2 * (4 + 0.5 * 6) / 64)


def test_target_losses_gradient_difference_sums_the_channels_first():
    # The official filter sums the channels before the difference: a colour change of zero sum costs nothing.
    dec = PDMDecoder([9, 8, 16, 32], [1, 1, 2, 4], 64, out_channels=3, task="prediction", frames=3,
                     image_size=(8, 8), offset_channels=8)
    target = torch.zeros(1, 3, 8, 8)
    target[0, :, 4, 4] = torch.tensor([1.0, -1.0, 0.0])
    zero = torch.zeros_like(target)
    terms = dec.target_losses(memad.DecoderOutput(zero, extras={"single_warp": zero}), target)
    assert terms["gradient_difference"].item() == 0.0
    target[0, 2, 4, 4] = 3.0  # channel sum 3 at one pixel: |dx| 3 twice, |dy| 3 twice, over 64, times 1.25
    terms = dec.target_losses(memad.DecoderOutput(zero, extras={"single_warp": zero}), target)
    assert terms["gradient_difference"].item() == pytest.approx(1.25 * 12 / 64)


def test_target_losses_single_warp_and_background_mse_by_hand():
    dec = _decoder()
    output, target = _spiky_output(dec)
    terms = dec.target_losses(output, target)
    assert set(terms) == {"single_warp", "gradient_difference", "background"}
    # single warp: (1 - 0)^2 at the spike and 0.5^2 at (5, 5), over 64 pixels
    assert terms["single_warp"].item() == pytest.approx((1 + 0.25) / 64)
    # background 0.25 against the target: 0.25^2 on 63 pixels, 0.75^2 on the spike
    assert terms["background"].item() == pytest.approx((63 * 0.0625 + 0.5625) / 64)
    weighted = _decoder(single_warp=3.0, background_loss=0.5)
    terms = weighted.target_losses(*_spiky_output(weighted))
    assert terms["single_warp"].item() == pytest.approx(3 * 1.25 / 64)
    assert terms["background"].item() == pytest.approx(0.5 * 4.5 / 64)
    with pytest.raises(ValueError, match="decoder.single_warp: expected a weight >= 0"):
        _decoder(single_warp=-1.0)


def test_the_single_warp_output_is_the_coarse_warp_alone_under_its_mask():
    dec = _decoder().eval()
    skips, bottleneck = _maps()
    with torch.no_grad():
        dec.background.param.fill_(0.25)
        out = dec(skips, bottleneck)
        coarse, _ = dec.offsets(skips[0])
        proto = warp(dec.prototype(skips, bottleneck), coarse)
        mask = warp(dec.mask_head(torch.cat([dec.mask_up(skips[2]), skips[1]], dim=1)), coarse)
    torch.testing.assert_close(out.extras["single_warp"], proto * mask + (1 - mask) * 0.25)


def test_target_signals_are_the_l1_error_and_the_windowed_gradient_error():
    dec = _decoder()
    output, target = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)
    target[0, 0, 3, 3] = 1.0
    sig = dec.target_signals(output, target)
    assert sig["recon_l1"].tolist() == pytest.approx([1 / 64, 0.0])
    # one bright pixel: |dx| + |dy| is 2 there and 1 to its right and below; the box is 16x14 -> 1x1 at 8 px
    assert dec.gradient_window == (1, 1)
    assert sig["gradient_error"].tolist() == pytest.approx([2.0, 0.0])


def test_background_is_the_median_of_the_first_training_batches_then_learns_by_gradient(tmp_path):
    dec = _decoder(background_batches=2)
    skips, bottleneck = _maps()
    frames = skips[0].reshape(1, 3, 1, 8, 8)
    dec.eval()(skips, bottleneck)
    assert dec.background.param.abs().sum() == 0 and int(dec.background.seen) == 0  # scoring never estimates
    dec.train()(skips, bottleneck)
    expected = torch.from_numpy(np.median(frames[0].numpy(), axis=0))
    torch.testing.assert_close(dec.background.param.detach(), expected)
    second = [skips[0] + 1.0, *skips[1:]]
    dec(second, bottleneck)  # median of the two batches' medians (the lower of two, as torch.median)
    torch.testing.assert_close(dec.background.param.detach(), torch.minimum(expected, expected + 1.0))
    dec(second, bottleneck)
    assert int(dec.background.seen) == 2  # the estimate took its two batches and stopped
    state = {k: v.clone() for k, v in dec.state_dict().items()}
    fresh = _decoder(background_batches=2)
    fresh.load_state_dict(state)
    fresh.train()([skips[0] * 0 + 5.0, *skips[1:]], bottleneck)
    torch.testing.assert_close(fresh.background.param.detach(), expected)  # a loaded model does not estimate again
    path = tmp_path / "bkg.png"
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint8)).save(path)
    from_file = _decoder(background=str(path))
    torch.testing.assert_close(from_file.background.param.detach(), torch.ones(1, 8, 8))
    assert not from_file.background.pending()
    with pytest.raises(ValueError, match="decoder.background: cannot read"):
        _decoder(background=str(tmp_path / "missing.png"))


def test_robust_smoothing_and_the_score_by_hand():
    # window 3 keeping 2: [1, 2, 9] (mean 4) keeps 1, 2 -> 1.5; [2, 9, 3] (mean 14/3) keeps 2, 3 -> 2.5
    got = robust_smooth(np.array([1.0, 2.0, 9.0, 3.0]), [1, 1, 1], keep=2)
    assert got.tolist() == pytest.approx([1.5, 1.5, 2.5, 2.5])
    weighted = robust_smooth(np.array([1.0, 2.0, 9.0]), [1, 3, 1], keep=2)
    assert weighted.tolist() == pytest.approx([(1 + 3 * 2) / 4] * 3)
    video = np.array([0, 0, 0, 1, 1, 1])
    stats = memad.FrameStats(video, {"deformation": np.array([0.0, 1.0, 2.0, 5.0, 5.0, 6.0]),
                                     "recon_l1": np.array([1.0, 0.0, 0.5, 0.0, 1.0, 1.0]),
                                     "gradient_error": np.array([2.0, 4.0, 3.0, 1.0, 1.0, 1.0]), "psnr": np.zeros(6)})
    plain = DMADScorer(smooth_weights=[])
    # per video min-max: deformation (0, .5, 1 | 0, 0, 1), l1 (1, 0, .5 | 0, 1, 1), gradient (0, 1, .5 | 0, 0, 0)
    expected = [0.4, 0.2 * 0.5 + 0.6, 0.2 + 0.2 + 0.3, 0.0, 0.4, 0.2 + 0.4]
    assert plain(stats).tolist() == pytest.approx(expected)
    smoothed = DMADScorer(smooth_weights=[1, 1, 1], smooth_keep=2)
    by_hand = sum(w * np.concatenate([robust_smooth(stats.normalised(n)[video == v], [1, 1, 1], 2) for v in (0, 1)])
                  for n, w in (("deformation", 0.2), ("recon_l1", 0.4), ("gradient_error", 0.6)))
    assert smoothed(stats).tolist() == pytest.approx(by_hand.tolist())
    assert smoothed.relative and not DMADScorer(smooth_weights=[], normalise="none").relative
    with pytest.raises(ValueError, match="scorer.smooth_keep"):
        DMADScorer(smooth_keep=12)


def test_calibrated_scores_are_unsmoothed_so_a_frame_scores_alone():
    video = np.zeros(12, dtype=int)
    signals = {"deformation": np.linspace(0.0, 1.1, 12), "recon_l1": np.r_[np.zeros(11), 2.0],
               "gradient_error": np.full(12, 0.5)}
    ranges = {"deformation": (0.0, 1.0), "recon_l1": (0.0, 0.5), "gradient_error": (0.0, 1.0)}
    stats = memad.FrameStats(video, signals, calibration=ranges)
    scorer = DMADScorer()  # the official 11-frame smoothing, which applies only without a calibration
    by_hand = 0.2 * signals["deformation"] + 0.4 * signals["recon_l1"] / 0.5 + 0.6 * 0.5
    assert scorer(stats).tolist() == pytest.approx(by_hand.tolist())
    last = memad.FrameStats(video[-1:], {k: v[-1:] for k, v in signals.items()}, calibration=ranges)
    assert scorer(last).tolist() == pytest.approx([by_hand[-1]])  # the same score alone as within its video
    plain = memad.FrameStats(video, signals)  # uncalibrated: per-video min-max, then smoothed (the official rule)
    assert not np.allclose(scorer(plain), DMADScorer(smooth_weights=[])(plain))


def test_dmad_pred_builds_fits_one_step_and_evaluates_on_synthetic():
    det = memad.build("dmad_pred", **tiny(train={"max_steps_per_epoch": 1, "batch_size": 2}))
    assert det.encoder.channels == [12, 8, 16, 32, 64] and det.memory.items.shape == (200, 64)
    before = det.memory.items.detach().clone()
    det.fit("synthetic")
    assert not torch.equal(before, det.memory.items.detach())  # the codebook learns by gradient
    assert int(det.decoder.background.seen) == 1 and det.decoder.background.param.abs().sum() > 0
    assert {"reconstruction", "memory", "decoder", "single_warp", "gradient_difference",
            "background"} <= set(det.history_[-1])
    scores = det.score("synthetic")
    assert {"deformation", "recon_l1", "gradient_error", "distance"} <= set(scores.stats.names)
    assert 0.0 <= scores.metrics()["frame_auroc"] <= 1.0


def test_the_deformation_decoder_needs_the_input_frames_from_its_encoder():
    with pytest.raises(memad.ConfigError, match="first map is the input frames"):
        memad.build("dmad_pred", **tiny(encoder={"name": "mnad_unet", "widths": [8, 16, 32, 64]}))
    with pytest.raises(memad.ConfigError, match="multiple of 8"):
        memad.build("dmad_pred", **tiny(data={"image_size": 36}))
    with pytest.raises(memad.ConfigError, match="memory.items"):
        memad.build("dmad_pred", **tiny(memory={"items": 0}))
