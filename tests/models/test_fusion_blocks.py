"""The shared fusion and recurrent blocks: known answers and the parameter counts the catalogue builds on."""

import pytest
import torch

from stf_bench.models.blocks.fusion import (coarse_pool, delta_baseline, gradient_l1, gradients, high_pass,
                                            icw_weights)
from stf_bench.models.blocks.masked import masked_l1, masked_mse
from stf_bench.models.blocks.recurrent import ConvGRUCell, ConvLSTMCell
from stf_bench.models.blocks.weighting import LearnedWeighting, icw_combine


def _n(module):
    return sum(p.numel() for p in module.parameters())


def test_delta_baseline_moves_the_reference_by_the_coarse_change():
    f1, c1, c2 = torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.2), torch.full((1, 1, 4, 4), 0.3)
    assert torch.allclose(delta_baseline(f1, c1, c2), torch.full((1, 1, 4, 4), 0.6))


def test_icw_favours_the_reference_whose_coarse_image_changed_less():
    c2 = torch.zeros(1, 1, 40, 40)
    c1, c3 = c2 + 0.1, c2 + 0.3   # |change| 0.1 and 0.3 -> w1 = (1/0.1)/(1/0.1 + 1/0.3) = 0.75 with eps 0
    w1, w3 = icw_weights(c2, c1, c3, eps=0.0)
    assert torch.allclose(w1, torch.full_like(w1, 0.75)) and torch.allclose(w1 + w3, torch.ones_like(w1))
    p = icw_combine(torch.ones_like(c2), torch.zeros_like(c2),
                    {"coarse_tgt": c2, "coarse_ref": c1, "coarse_ref2": c3}, eps=0.0)
    assert torch.allclose(p, torch.full_like(p, 0.75))


def test_icw_with_no_change_anywhere_is_an_even_split_thanks_to_eps():
    c = torch.rand(1, 1, 16, 16)
    w1, _ = icw_weights(c, c, c, eps=0.01)
    assert torch.allclose(w1, torch.full_like(w1, 0.5))


def test_coarse_pool_averages_partial_edge_blocks_over_their_own_pixels():
    x = torch.arange(50.0).repeat(50, 1)[None, None]   # column index
    pooled = coarse_pool(x, 32)
    assert pooled.shape == (1, 1, 2, 2)
    assert pooled[0, 0, 0, 0] == pytest.approx(15.5) and pooled[0, 0, 0, 1] == pytest.approx(40.5)  # mean of 32..49


def test_high_pass_of_a_constant_is_zero_and_gradients_of_a_ramp_are_constant():
    assert high_pass(torch.full((1, 1, 16, 16), 3.0)).abs().max() < 1e-6
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]
    gx, gy = gradients(ramp)
    assert torch.all(gx == 1) and torch.all(gy == 0)
    assert gradient_l1(ramp, ramp + 5.0) == 0   # an offset has no gradient


def test_masked_losses_ignore_masked_pixels():
    pred, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 1.0], [100.0, 100.0]]]])
    mask = torch.tensor([[[[True, True], [False, False]]]])
    assert masked_l1(pred, target, mask) == 1.0 and masked_mse(pred, target, mask) == 1.0


def test_recurrent_and_weighting_parameter_counts():
    assert 2 * _n(ConvLSTMCell(64, 64)) == 590_336      # stscl: 2 layers, hidden 64
    assert _n(ConvLSTMCell(65, 64)) == 297_472          # tsstfn: features + a dt plane
    assert 2 * _n(ConvGRUCell(64, 64)) == 442_752       # rnn_generic
    assert _n(LearnedWeighting()) == 11_010             # stscl's adaptive weighting


def test_recurrent_cells_keep_shape_and_start_from_zero_state():
    x = torch.rand(2, 5, 8, 8)
    lstm, gru = ConvLSTMCell(5, 4), ConvGRUCell(5, 4)
    h, c = lstm(x, lstm.zero_state(x))
    assert h.shape == c.shape == (2, 4, 8, 8) and h.abs().max() < 1
    assert gru(x, gru.zero_state(x)).shape == (2, 4, 8, 8)
