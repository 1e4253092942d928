"""CompositeLoss on an internal value range: SwinSTFM's loss computed as its official loss.py does, on [-1, 1]."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.training.losses import CompositeLoss


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 1, 64, 64, generator=g)
    pred = target + 0.05 * torch.randn(2, 1, 64, 64, generator=g)
    valid = torch.ones_like(target, dtype=torch.bool)
    return pred, {"fine_tgt": target, "valid_tgt": valid}


def test_symmetric_range_matches_the_official_loss_on_minus_one_one_data():
    pred, batch = _batch()
    loss = CompositeLoss(terms=[{"name": "charbonnier", "eps": 1e-3}, {"name": "ms_ssim", "variant": "relu"}],
                         value_range="symmetric")(pred, batch)
    p, t = 1.6 * pred - 0.8, 1.6 * batch["fine_tgt"] - 0.8  # the official data scaling
    official_charb = torch.sqrt((t - p) ** 2 + 1e-6).mean()
    official_msssim = 1 - ms_ssim(p, t, data_range=2.0, variant="relu")
    assert float(loss["charbonnier"]) == pytest.approx(float(official_charb), rel=1e-5)
    assert float(loss["ms_ssim"]) == pytest.approx(float(official_msssim), rel=1e-5)
    plain = CompositeLoss(terms=[{"name": "charbonnier", "eps": 1e-3}])(pred, batch)
    assert float(loss["charbonnier"]) / float(plain["charbonnier"]) == pytest.approx(1.6, rel=0.01)


def test_swinstfm_config_computes_its_loss_on_the_symmetric_range():
    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "model" / "swinstfm.yaml")
    assert CompositeLoss(**cfg.loss).data_range == 2.0


def test_unknown_value_range_is_a_config_error():
    with pytest.raises(ConfigError, match="value_range='minus_one'"):
        CompositeLoss(terms=[{"name": "l1"}], value_range="minus_one")
