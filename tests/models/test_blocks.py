"""Shared model blocks: MS-SSIM variants, SwitchNorm2d, strict loading and pre-training of frozen loss networks."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage.metrics import structural_similarity

from stf_bench.errors import ConfigError, DataError
from stf_bench.models.blocks.masked import fill_invalid
from stf_bench.models.blocks.msssim import MS_SSIM_WEIGHTS, ms_ssim, ssim
from stf_bench.models.blocks.pretrained import (
    FrozenEncoder,
    PretrainedPiece,
    load_strict,
    patch_offsets,
    train_piece,
)
from stf_bench.models.blocks.switchnorm import SwitchNorm2d

VARIANTS = ("product", "relu", "edcstfn")


def _pair(shape=(2, 1, 64, 64), noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    return x, x + noise * torch.randn(shape, generator=g)


# ------------------------------------------------------------------------------------------------------ MS-SSIM
def test_ssim_matches_skimage_gaussian_ssim():
    x, y = _pair((1, 1, 40, 40))
    expected = structural_similarity(
        x[0, 0].double().numpy(), y[0, 0].double().numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(x, y, 1.0).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ms_ssim_of_identical_images_is_one(variant):
    x, _ = _pair()
    assert ms_ssim(x, x, 1.0, variant).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ms_ssim_below_one_for_noise(variant):
    x, _ = _pair()
    y = torch.rand_like(x)  # strong enough for the relu variant, whose +0.05 clip saturates above 0.95
    value = ms_ssim(x, y, 1.0, variant).item()
    assert 0 < value < 0.9


def test_ms_ssim_constant_images_known_answer():
    """Constant images: cs = 1 at every level and ssim = (2ab + C1) / (a^2 + b^2 + C1) at every level."""
    a, b = 0.2, 0.8
    x, y = (torch.full((1, 1, 32, 32), v, dtype=torch.float64) for v in (a, b))  # float32 var: ~1e-5 off
    s = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    w = MS_SSIM_WEIGHTS
    product = ((s + 1) / 2) ** (4 * w[4])  # level 5 enters four times: the official quirk
    relu = min(1.01 ** sum(w[:4]) * (s + 0.01) ** w[4] + 0.05, 1.0)
    assert ms_ssim(x, y, 1.0, "product").item() == pytest.approx(product, rel=1e-9)
    assert ms_ssim(x, y, 1.0, "edcstfn").item() == pytest.approx(product, rel=1e-9)
    assert ms_ssim(x, y, 1.0, "relu").item() == pytest.approx(relu, rel=1e-9)


@pytest.mark.parametrize("variant", ("product", "relu"))
def test_ms_ssim_uses_the_given_range_not_the_data(variant):
    x, _ = _pair()
    y = torch.rand_like(x)
    base = ms_ssim(x, y, 1.0, variant).item()
    assert ms_ssim(2 * x, 2 * y, 1.0, variant).item() != pytest.approx(base, abs=1e-4)
    assert ms_ssim(2 * x, 2 * y, 2.0, variant).item() == pytest.approx(base, abs=1e-5)


def test_ms_ssim_rejects_bad_arguments():
    x, y = _pair()
    with pytest.raises(ValueError, match="data_range"):
        ms_ssim(x, y, None)
    with pytest.raises(ValueError, match="variant"):
        ms_ssim(x, y, 1.0, "gaussian")
    with pytest.raises(ValueError, match=">= 16"):
        ms_ssim(x[..., :8, :8], y[..., :8, :8], 1.0)


def test_ms_ssim_gradient_is_finite():
    x, y = _pair()
    y.requires_grad_(True)
    (1 - ms_ssim(x, y, 1.0)).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------- SwitchNorm
def test_switchnorm_parameters():
    assert sum(p.numel() for p in SwitchNorm2d(4).parameters()) == 2 * 4 + 6


def test_switchnorm_single_sample_single_channel_uses_unbiased_variance():
    """With N = C = 1 the IN, LN and BN statistics coincide, so the output is (x - mean) / sqrt(var_unbiased)."""
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = SwitchNorm2d(1).train()(x)
    expected = (x - x.mean()) / torch.sqrt(x.var(unbiased=True) + 1e-5)
    torch.testing.assert_close(out, expected)


def test_switchnorm_running_statistics_and_eval():
    g = torch.Generator().manual_seed(1)
    norm = SwitchNorm2d(3).train()
    b1, b2 = torch.randn(4, 3, 5, 5, generator=g) * 2 + 1, torch.randn(4, 3, 5, 5, generator=g)

    def bn_stats(x):
        mean_in, var_in = x.mean((2, 3)), x.var((2, 3), unbiased=True)
        mean_bn = mean_in.mean(0)
        return mean_bn, (var_in + mean_in**2).mean(0) - mean_bn**2

    m1, v1 = bn_stats(b1)
    norm(b1)
    torch.testing.assert_close(norm.running_mean.flatten(), 0.1 * m1)
    torch.testing.assert_close(norm.running_var.flatten(), 0.1 * v1)
    m2, v2 = bn_stats(b2)
    norm(b2)
    torch.testing.assert_close(norm.running_mean.flatten(), 0.09 * m1 + 0.1 * m2)
    torch.testing.assert_close(norm.running_var.flatten(), 0.09 * v1 + 0.1 * v2)

    # Evaluation normalizes with the running statistics and leaves them alone.
    norm.eval()
    with torch.no_grad():
        norm.mean_weight.copy_(torch.tensor([-1e4, -1e4, 0.0]))  # softmax -> BN only
        norm.var_weight.copy_(torch.tensor([-1e4, -1e4, 0.0]))
    before = norm.running_mean.clone()
    out = norm(b1)
    rm, rv = norm.running_mean.view(1, 3, 1, 1), norm.running_var.view(1, 3, 1, 1)
    torch.testing.assert_close(out, (b1 - rm) / torch.sqrt(rv + 1e-5))
    torch.testing.assert_close(norm.running_mean, before)


# ----------------------------------------------------------------------------------------------- pretrained pieces
class TinyAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.decoder = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def _tiny_piece(**recipe):
    base = dict(patch=32, stride=32, batch_size=2, max_epochs=3, lr=1e-2, weight_decay=0.0, plateau_factor=0.1,
                plateau_patience=5, val_fraction=0.2)
    return PretrainedPiece("tiny", TinyAutoencoder, nn.functional.mse_loss, {**base, **recipe}, None)


def test_patch_offsets_add_an_edge_flush_patch():
    assert patch_offsets(950, 256, 200) == [0, 200, 400, 600, 694]
    assert patch_offsets(512, 256, 128) == [0, 128, 256]
    with pytest.raises(ValueError):
        patch_offsets(200, 256, 128)


def test_load_strict_rejects_a_prefixed_state_dict():
    net = nn.Sequential(nn.Conv2d(1, 2, 3))
    prefixed = {f"encoder.{k}": v for k, v in net.state_dict().items()}
    with pytest.raises(ConfigError, match=r"(?s)Missing keys \['0.bias', '0.weight'\].*prefix 'encoder\.'") as err:
        load_strict(net, prefixed, "demo encoder")
    assert "demo encoder" in str(err.value)
    with pytest.raises(ConfigError, match="wrong shapes"):
        load_strict(net, {k: v[:1] for k, v in net.state_dict().items()}, "demo encoder")


def test_frozen_encoder_refuses_to_run_unloaded_then_stays_frozen():
    net = nn.Conv2d(1, 2, 3, padding=1)
    frozen = FrozenEncoder(net, "demo encoder")
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match="load_pretrained"):
        frozen(x)
    weights = {k: torch.ones_like(v) for k, v in net.state_dict().items()}
    frozen.load(weights)
    frozen.train()
    assert not frozen.net.training and not any(p.requires_grad for p in frozen.parameters())
    frozen(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the prediction
    assert bool(frozen.state_dict()["loaded"])


def test_fill_invalid_replaces_only_unobserved_pixels():
    target, pred = torch.tensor([1.0, float("nan")]), torch.tensor([5.0, 6.0])
    torch.testing.assert_close(fill_invalid(target, torch.tensor([True, False]), pred), torch.tensor([1.0, 6.0]))


def test_train_piece_returns_the_encoder_weights_and_learns():
    g = np.random.default_rng(0)
    images = [g.random((64, 64), dtype=np.float32) for _ in range(2)]  # 8 patches of 32: 6 train, 2 validation
    piece = _tiny_piece()
    with torch.random.fork_rng():
        torch.manual_seed(3)
        initial = TinyAutoencoder().encoder.state_dict()
    state = train_piece(piece, images, seed=3, progress=False)
    assert set(state) == set(initial)
    assert not torch.equal(state["0.weight"], initial["0.weight"])
    again = train_piece(piece, images, seed=3, progress=False)
    assert all(torch.equal(state[k], again[k]) for k in state)  # seeded: reproducible


def test_train_piece_rejects_bad_input():
    good = [np.zeros((64, 64), np.float32)] * 2
    with pytest.raises(DataError, match="image 1"):
        train_piece(_tiny_piece(), [good[0], np.full((64, 64), np.nan, np.float32)], seed=0, progress=False)
    with pytest.raises(DataError, match="smaller than the pre-training patch 128; set model.net.tiny.recipe.patch"):
        train_piece(_tiny_piece(patch=128), good, seed=0, progress=False)
    piece = _tiny_piece()
    with pytest.raises(ConfigError, match=r"missing keys \['lr'\]"):
        train_piece(replace(piece, recipe={k: v for k, v in piece.recipe.items() if k != "lr"}), good, seed=0)
