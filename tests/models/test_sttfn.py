"""STTFN (reconstructed): design counts, the delta-baseline direction networks, ICW, and reference-only training."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.data.normalization import AffineNorm
from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import delta_baseline
from stf_bench.models.sttfn import STTFN
from tests.models.helpers import model_conf, n_params

CONF = model_conf("sttfn")
NORM = AffineNorm(offset=250.0, scale=60.0)


def _model(cfg, **overrides):
    torch.manual_seed(0)
    net = instantiate(cfg.net, **overrides)
    net.norm = NORM
    return net


@pytest.fixture
def model(cfg):
    return _model(cfg)


def _batch(size=32, seed=0, with_target=True):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2"] + (["fine_tgt"] if with_target else [])
    batch = {k: 0.3 + 0.4 * torch.rand(2, 1, size, size, generator=g) for k in keys}
    if with_target:
        batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_and_design_counts(cfg, model):
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.size_multiple, cfg.net.train_on) == (
        "sttfn", "reconstructed", 2, 1, "references")
    assert "min_refs" not in cfg and cfg.loss is None and cfg.optimizer.lr == 1e-4
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (16, 128, 200)
    assert n_params(model) == cfg.params_target == 325_122
    for net in (model.net_f, model.net_b):
        assert n_params(net) == 162_561
        assert [n_params(c) for c in net.multiscale] == [896, 2_432, 4_736]
        assert (n_params(net.squeeze), n_params(net.body), n_params(net.head)) == (6_208, 147_712, 577)


def test_pinned_forward_value(model):
    model.eval()
    with torch.no_grad():
        out = model(_batch(seed=5))
    assert out.shape == (2, 1, 32, 32)
    assert out.mean().item() == pytest.approx(0.52154076, abs=1e-5)
    assert out.std().item() == pytest.approx(0.16321199, abs=1e-5)


def test_direction_network_corrects_the_delta_baseline(model):
    b = _batch()
    with torch.no_grad():
        model.net_f.head.weight.zero_()
        model.net_f.head.bias.zero_()
        out = model.net_f(b["fine_ref"], b["coarse_ref"], b["coarse_tgt"])
    torch.testing.assert_close(out, delta_baseline(b["fine_ref"], b["coarse_ref"], b["coarse_tgt"]))


def test_icw_trusts_the_reference_whose_coarse_image_did_not_change(model):
    """C3 = C2 and C1 5 K away: d_1 = 5 K + eps, d_3 = eps, so w_1 = eps / (5 K + 2 eps) = 1/102 (eps = 0.05 K)."""
    b = _batch()
    b["coarse_ref2"] = b["coarse_tgt"].clone()
    b["coarse_ref"] = b["coarse_tgt"] + NORM.kelvin_to_units(5.0)
    with torch.no_grad():
        p_f = model.net_f(b["fine_ref"], b["coarse_ref"], b["coarse_tgt"])
        p_b = model.net_b(b["fine_ref2"], b["coarse_ref2"], b["coarse_tgt"])
        out = model(b)
    w_1 = 0.05 / (5.0 + 2 * 0.05)
    torch.testing.assert_close(out, w_1 * p_f + (1 - w_1) * p_b, atol=1e-6, rtol=1e-5)


def test_icw_needs_the_normalization(cfg):
    torch.manual_seed(0)
    net = instantiate(cfg.net)
    with pytest.raises(RuntimeError, match="norm"):
        net(_batch())


def test_default_training_uses_the_reference_pairs_only(model):
    """Net_f(F1, C1, C3) -> F3 and Net_b(F3, C3, C1) -> F1, all pixels; no target key is read."""
    b = _batch(with_target=False)
    terms = model.compute_loss(b, epoch=0)
    with torch.no_grad():
        forward = (model.net_f(b["fine_ref"], b["coarse_ref"], b["coarse_ref2"]) - b["fine_ref2"]).pow(2).mean()
        backward = (model.net_b(b["fine_ref2"], b["coarse_ref2"], b["coarse_ref"]) - b["fine_ref"]).pow(2).mean()
    assert set(terms) == {"loss", "forward_ref", "backward_ref"}
    torch.testing.assert_close(terms["loss"].detach(), forward + backward)
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_all_pairs_adds_the_target_pairs_over_observed_pixels(cfg):
    model = _model(cfg, train_on="all_pairs")
    b = _batch()
    terms = model.compute_loss(b, epoch=0)
    assert set(terms) == {"loss", "forward_ref", "backward_ref", "forward_tgt", "backward_tgt"}
    torch.testing.assert_close(terms["loss"], sum(v for k, v in terms.items() if k != "loss"))
    changed = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], 5.0))
    torch.testing.assert_close(model.compute_loss(changed, 0)["loss"], terms["loss"])
    changed = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"] + 0.1, b["fine_tgt"]))
    assert model.compute_loss(changed, 0)["loss"] > terms["loss"]


def test_unknown_train_on_is_a_config_error():
    with pytest.raises(ConfigError, match="train_on='targets'.*references"):
        STTFN(train_on="targets")
