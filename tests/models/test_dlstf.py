"""dlstf (reconstructed): design parameter counts, the zero-initialised residual, and the two-pair MSE."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.blocks.residual import ResidualBlock
from stf_bench.models.dlstf import DLSTF
from tests.models.helpers import model_conf, n_trainable

CONF = model_conf("dlstf")


def _model(use_reference=False, seed=0, spread=False):
    torch.manual_seed(seed)
    net = DLSTF(use_reference=use_reference)
    if spread:  # a trained-looking last conv instead of zeros
        torch.nn.init.normal_(net.residual[-1].weight, std=0.05)
    return net


def _batch(size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(2, 1, size, size, generator=g)
             for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_and_design_counts():
    cfg = OmegaConf.load(CONF)
    net = instantiate(cfg.net)
    assert (cfg.label, cfg.n_refs, list(cfg.inputs), cfg.loss) == ("reconstructed", 1, ["coarse_tgt"], None)
    assert n_trainable(net) == cfg.params_target == 592_065
    head, *blocks, tail = net.residual
    assert (n_trainable(head), len(blocks), n_trainable(tail)) == (640, 8, 577)
    assert all(isinstance(b, ResidualBlock) and n_trainable(b) == 73_856 for b in blocks)
    assert n_trainable(_model(use_reference=True)) == 593_217


@pytest.mark.parametrize("use_reference", (False, True))
def test_training_starts_at_the_coarse_image(use_reference):
    batch = _batch()
    torch.testing.assert_close(_model(use_reference)(batch), batch["coarse_tgt"], atol=0, rtol=0)


def test_default_reads_only_the_target_coarse_image():
    batch = _batch()
    net = _model(spread=True)
    only = {"coarse_tgt": batch["coarse_tgt"]}
    torch.testing.assert_close(net(only), net(batch))
    with pytest.raises(KeyError):
        _model(use_reference=True, spread=True)(only)


def test_loss_is_the_mean_of_the_target_and_reference_pairs():
    batch = _batch()
    net = _model(spread=True)
    terms = net.compute_loss(batch, epoch=0)
    with torch.no_grad():
        pred = net(batch)
        ref_pred = net(dict(batch, coarse_tgt=batch["coarse_ref"]))
    v = batch["valid_tgt"]
    expected_tgt = ((pred - batch["fine_tgt"])[v] ** 2).mean()
    expected_ref = ((ref_pred - batch["fine_ref"]) ** 2).mean()  # every reference pixel counts
    torch.testing.assert_close(terms["mse_tgt"], expected_tgt)
    torch.testing.assert_close(terms["mse_ref"], expected_ref)
    torch.testing.assert_close(terms["loss"], (expected_tgt + expected_ref) / 2)
    changed = dict(batch, fine_tgt=torch.where(v, batch["fine_tgt"], 7.0))  # unobserved target pixels ignored
    torch.testing.assert_close(net.compute_loss(changed, 0)["loss"], terms["loss"])


def test_with_reference_input_only_the_target_pair_trains():
    batch = _batch()
    net = _model(use_reference=True, spread=True)
    terms = net.compute_loss(batch, epoch=0)
    assert set(terms) == {"loss", "mse_tgt"}
    with torch.no_grad():
        pred = net(batch)
    torch.testing.assert_close(terms["loss"], ((pred - batch["fine_tgt"])[batch["valid_tgt"]] ** 2).mean())


def test_after_one_step_every_layer_learns():
    """The zero last conv blocks the gradient of the layers before it only until its first update."""
    net = _model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = _batch()
    net.compute_loss(batch, 0)["loss"].backward()
    assert [n for n, p in net.named_parameters() if p.grad.abs().sum() > 0] == ["residual.9.weight", "residual.9.bias"]
    opt.step()
    opt.zero_grad()
    net.compute_loss(batch, 0)["loss"].backward()
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())


def test_pinned_forward_value():
    with torch.no_grad():
        out = _model(spread=True)(_batch(seed=1))
    assert out.mean().item() == pytest.approx(0.163661, rel=1e-5)
    assert out.std().item() == pytest.approx(0.3826966, rel=1e-5)

