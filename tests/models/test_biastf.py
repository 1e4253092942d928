"""biastf (reconstructed): design parameter counts, the delta-baseline start, the masked L1 and the optional
MODIS-scale mean term on the bias."""

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.biastf import BiaSTF
from stf_bench.models.blocks.residual import ResidualBlock
from tests.models.helpers import model_conf, n_trainable

CONF = model_conf("biastf")


def _model(mean_weight=0.0, seed=0, spread=False):
    torch.manual_seed(seed)
    net = BiaSTF(mean_weight=mean_weight)
    if spread:  # a trained-looking last conv instead of zeros
        torch.nn.init.normal_(net.bias_net[-1].weight, std=0.05)
    return net


def _batch(size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(2, 1, size, size, generator=g)
             for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def _delta(batch):
    return batch["fine_ref"] + (batch["coarse_tgt"] - batch["coarse_ref"])


def test_config_and_design_counts():
    cfg = OmegaConf.load(CONF)
    net = instantiate(cfg.net)
    assert (cfg.label, cfg.n_refs, cfg.loss, net.mean_weight, net.coarse_factor) == ("reconstructed", 1, None, 0.0, 32)
    assert n_trainable(net) == cfg.params_target == 445_505
    head, *blocks, tail = net.bias_net
    assert (n_trainable(head), len(blocks), n_trainable(tail)) == (1_792, 6, 577)
    assert all(isinstance(b, ResidualBlock) and n_trainable(b) == 73_856 for b in blocks)


def test_training_starts_at_the_delta_baseline():
    batch = _batch()
    torch.testing.assert_close(_model()(batch), _delta(batch), atol=0, rtol=0)


def test_loss_is_l1_over_observed_target_pixels():
    batch = _batch()
    net = _model(spread=True)
    terms = net.compute_loss(batch, epoch=0)
    assert set(terms) == {"loss", "l1"}
    with torch.no_grad():
        pred = net(batch)
    v = batch["valid_tgt"]
    torch.testing.assert_close(terms["loss"], (pred - batch["fine_tgt"])[v].abs().mean())
    changed = dict(batch, fine_tgt=torch.where(v, batch["fine_tgt"], 7.0))
    torch.testing.assert_close(net.compute_loss(changed, 0)["loss"], terms["loss"])


def test_mean_term_penalises_the_modis_scale_mean_of_the_bias():
    batch = _batch(size=64)
    net = _model(mean_weight=0.1, spread=True)
    terms = net.compute_loss(batch, epoch=0)
    with torch.no_grad():
        bias = net(batch) - _delta(batch)
    expected = F.avg_pool2d(bias, 32).abs().mean()
    torch.testing.assert_close(terms["bias_mean"], expected)
    torch.testing.assert_close(terms["loss"], terms["l1"] + 0.1 * expected)
    assert _model(mean_weight=0.1).compute_loss(batch, 0)["bias_mean"].item() == 0.0  # zero bias at the start


def test_pinned_forward_value():
    with torch.no_grad():
        out = _model(spread=True)(_batch(seed=1))
    assert out.mean().item() == pytest.approx(0.4493697, rel=1e-5)
    assert out.std().item() == pytest.approx(0.5563362, rel=1e-5)

