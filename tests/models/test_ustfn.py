"""USTFN (reconstructed): design counts, the delta-baseline start, and an objective that never reads F2."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.models.blocks.fusion import coarse_pool, delta_baseline, high_pass
from tests.models.helpers import model_conf, n_params

CONF = model_conf("ustfn")


def _batch(size=64, seed=0, with_target=False):
    """Fine images with detail; coarse images their 8 px block means (so A_32(F1) = A_32(C1))."""
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for role in ("ref", "tgt"):
        fine = 0.3 + 0.4 * torch.rand(2, 1, size, size, generator=g)
        batch[f"fine_{role}"] = fine
        batch[f"coarse_{role}"] = torch.nn.functional.interpolate(coarse_pool(fine, 8), scale_factor=8.0)
    if with_target:
        batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    else:
        del batch["fine_tgt"]
    return batch


def test_config_and_design_counts(cfg, model):
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.size_multiple, cfg.net.coarse_factor) == (
        "ustfn", "reconstructed", 1, 32, 32)
    assert cfg.net.unsupervised is True and cfg.net.detail_weight == 0.1 and cfg.loss is None
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs, cfg.optimizer.lr) == (8, 128, 200, 1e-4)
    assert n_params(model) == cfg.params_target == 471_553
    u = model.unet
    assert [n_params(m) for m in (u.enc1, u.enc2, u.enc3, u.dec2, u.dec1, u.head)] == [
        10_144, 55_424, 221_440, 147_584, 36_928, 33]


def test_pinned_forward_value(model):
    with torch.no_grad():
        assert model(_batch(seed=5)).equal(delta_baseline(*(_batch(seed=5)[k] for k in
                                                            ("fine_ref", "coarse_ref", "coarse_tgt"))))
        torch.manual_seed(7)  # a head off zero, so that the whole U-Net shapes the pinned correction
        torch.nn.init.normal_(model.unet.head.weight, std=1e-4)
        out = model(_batch(seed=5))
        base = delta_baseline(*(_batch(seed=5)[k] for k in ("fine_ref", "coarse_ref", "coarse_tgt")))
    assert out.shape == (2, 1, 64, 64)
    correction = out - base
    assert correction.abs().max().item() < 1e-4
    assert correction.mean().item() == pytest.approx(-1.3450859e-05, rel=1e-4)
    assert correction.std().item() == pytest.approx(1.5564500e-06, rel=1e-3)


def test_loss_terms_at_the_delta_baseline(model):
    """With a zero head G is b_1: the cycle returns F1 exactly, the 32 px means of b_1 are those of C2 (C1 holds
    F1's block means), and only the detail prior remains, 0.1 |HP(C2 - C1)|; no target key is read."""
    b = _batch()
    with torch.no_grad():
        model.unet.head.weight.zero_()
        terms = model.compute_loss(b, epoch=0)
    assert set(terms) == {"loss", "coarse", "cycle", "detail"}
    assert terms["cycle"].item() == pytest.approx(0.0, abs=1e-5)
    assert terms["coarse"].item() == pytest.approx(0.0, abs=1e-5)
    detail = high_pass(b["coarse_tgt"] - b["coarse_ref"]).abs().mean()
    assert terms["detail"].item() == pytest.approx(detail.item(), rel=1e-4) and detail > 1e-3
    weighted = terms["coarse"] + terms["cycle"] + 0.1 * terms["detail"]
    assert terms["loss"].item() == pytest.approx(weighted.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(0.1 * detail.item(), rel=0.01)


def test_cycle_runs_the_same_network_back_to_the_reference_date(model):
    b = _batch()
    torch.nn.init.normal_(model.unet.head.weight, std=1e-4)  # off its zero start, so both passes reach every layer
    pred = model(b)
    back = model.generate(pred, b["coarse_tgt"], b["coarse_ref"])
    terms = model.compute_loss(b, epoch=0, pred=pred)
    torch.testing.assert_close(terms["cycle"], (back - b["fine_ref"]).abs().mean().detach())
    terms["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_supervised_ablation_adds_l1_on_observed_target_pixels(cfg):
    torch.manual_seed(0)
    model = instantiate(cfg.net, unsupervised=False)
    b = _batch(with_target=True)
    terms = model.compute_loss(b, epoch=0)
    assert "supervised" in terms
    unsupervised = terms["coarse"] + terms["cycle"] + 0.1 * terms["detail"]
    torch.testing.assert_close(terms["loss"].detach(), unsupervised + terms["supervised"])
    changed = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], 5.0))
    torch.testing.assert_close(model.compute_loss(changed, 0)["loss"], terms["loss"])
