"""blocks/deform.py (modulated deformable conv with grid_sample) and blocks/sobel.py (Sobel magnitude loss)."""

import pytest
import torch
import torch.nn.functional as F

from stf_bench.models.blocks.deform import modulated_deform_conv2d
from stf_bench.models.blocks.sobel import sobel_magnitude, sobel_mse


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_zero_offsets_and_unit_masks_are_a_zero_padded_conv():
    x, w, b = _rand(2, 3, 7, 9), _rand(4, 3, 3, 3, seed=1), _rand(4, seed=2)
    out = modulated_deform_conv2d(x, torch.zeros(2, 18, 7, 9), torch.ones(2, 9, 7, 9), w, b)
    assert torch.allclose(out, F.conv2d(x, w, b, padding=1), atol=1e-5)


def test_integer_offsets_shift_the_input_and_masks_scale_each_tap():
    x, w = _rand(1, 2, 6, 8), _rand(3, 2, 3, 3, seed=1)
    offset = torch.zeros(1, 18, 6, 8)
    offset[:, 1::2] = 1.0  # every tap one column to the right
    mask = torch.full((1, 9, 6, 8), 0.5)
    expected = 0.5 * F.conv2d(F.pad(x, (0, 2, 1, 1)), w)  # taps x(y+i-1, x+j): no left pad, two on the right
    assert torch.allclose(modulated_deform_conv2d(x, offset, mask, w), expected, atol=1e-5)


def test_fractional_offsets_interpolate_bilinearly_with_zero_outside():
    x = torch.arange(4.0).view(1, 1, 1, 4) + 1  # 1 2 3 4
    offset = torch.tensor([0.0, 0.5]).view(1, 2, 1, 1).expand(1, 2, 1, 4).contiguous()  # 1x1 kernel, dx = +0.5
    out = modulated_deform_conv2d(x, offset, torch.ones(1, 1, 1, 4), torch.ones(1, 1, 1, 1))
    assert torch.allclose(out.flatten(), torch.tensor([1.5, 2.5, 3.5, 2.0]), atol=1e-6)  # last: half of 4 + 0


def test_gradients_reach_input_offsets_and_masks():
    x, w = _rand(1, 2, 5, 5).requires_grad_(), _rand(2, 2, 3, 3, seed=1)
    offset = (0.3 * _rand(1, 18, 5, 5, seed=2)).requires_grad_()
    mask = torch.rand(1, 9, 5, 5).requires_grad_()
    modulated_deform_conv2d(x, offset, mask, w).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (x, offset, mask))


def test_shape_errors_are_explained():
    with pytest.raises(ValueError, match="odd kernel"):
        modulated_deform_conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 8, 4, 4), torch.zeros(1, 4, 4, 4),
                                torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="expected"):
        modulated_deform_conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 9, 4, 4), torch.zeros(1, 9, 4, 4),
                                torch.zeros(1, 1, 3, 3))


def test_matches_torchvision_deform_conv2d():
    ops = pytest.importorskip("torchvision.ops")
    x, w, b = _rand(2, 3, 7, 9), _rand(4, 3, 3, 3, seed=1), _rand(4, seed=2)
    offset, mask = 3 * _rand(2, 18, 7, 9, seed=3), torch.rand(2, 9, 7, 9)
    expected = ops.deform_conv2d(x, offset, w, b, padding=(1, 1), mask=mask)
    assert torch.allclose(modulated_deform_conv2d(x, offset, mask, w, b), expected, atol=1e-5)


def test_sobel_magnitude_of_a_ramp_is_eight_times_its_slope_inside():
    ramp = 0.25 * torch.arange(8.0).view(1, 1, 1, 8).expand(1, 2, 6, 8)
    mag = sobel_magnitude(ramp)
    assert mag.shape == ramp.shape
    assert torch.allclose(mag[..., 1:-1, 1:-1], torch.full_like(mag[..., 1:-1, 1:-1], (4.0 + 1e-6) ** 0.5))
    assert torch.allclose(sobel_magnitude(torch.zeros(1, 1, 4, 4)), torch.full((1, 1, 4, 4), 1e-3))


def test_sobel_mse_ignores_unobserved_target_pixels():
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    valid = torch.rand(2, 1, 16, 16) > 0.3
    plain = sobel_mse(pred, target)
    assert plain == pytest.approx(float(((sobel_magnitude(pred) - sobel_magnitude(target)) ** 2).mean()))
    changed = torch.where(valid, target, target + 5.0)
    assert sobel_mse(pred, changed, valid) == pytest.approx(float(sobel_mse(pred, target, valid)), abs=1e-7)
    assert sobel_mse(pred, changed) != pytest.approx(float(plain))
