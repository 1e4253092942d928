"""CascadeSTF (reconstructed): stage 1 is EDCSTFN's network, the epoch schedule, and which stage trains when."""

import pytest
import torch

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool
from stf_bench.models.cascadestf import CascadeSTF
from stf_bench.models.edcstfn import EDCSTFN, EDCSTFNNetwork
from tests.models.helpers import model_conf, n_params

CONF = model_conf("cascadestf")


def _batch(size=32, seed=0, with_target=True):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt"] + (["fine_tgt"] if with_target else [])
    batch = {k: 0.3 + 0.4 * torch.rand(2, 1, size, size, generator=g) for k in keys}
    if with_target:
        batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def _trained(model, batch, epoch):
    model.zero_grad(set_to_none=True)
    model.compute_loss(batch, epoch)["loss"].backward()
    return {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_config_and_design_counts(cfg, model):
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.size_multiple, cfg.net.coarse_factor) == (
        "cascadestf", "reconstructed", 1, 32, 32)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs, cfg.optimizer.lr) == (8, 128, 150, 1e-4)
    assert cfg.net.max_epochs == cfg.train.max_epochs and cfg.net.stage2_transductive is False and cfg.loss is None
    assert n_params(model) == cfg.params_target == 316_386
    assert (n_params(model.stage1), n_params(model.refiner)) == (278_209, 38_177)
    s1 = model.stage1
    assert (n_params(s1.fine_encoder), n_params(s1.residual_encoder), n_params(s1.decoder)) == (92_672, 93_248, 92_289)
    assert type(s1) is EDCSTFNNetwork and not hasattr(s1, "feature_encoder")  # no frozen feature loss


def test_stage1_is_edcstfn_in_one_reference_mode(model):
    """EDCSTFN's fusion weights load into stage 1 key for key and give EDCSTFN's one-reference output."""
    edc = EDCSTFN(feature_encoder={"ckpt": None, "ssim_weight": 0.8, "recipe": {}})
    fusion = {k: v for k, v in edc.state_dict().items() if not k.startswith("feature_encoder.")}
    model.stage1.load_state_dict(fusion, strict=True)
    b = _batch(with_target=False)
    second = dict(b, fine_ref2=b["fine_ref"].flip(-1), coarse_ref2=b["coarse_ref"].flip(-1))
    with torch.no_grad():
        torch.testing.assert_close(model.initial(second), edc(b))  # a second reference is not used


def test_pinned_forward_value_starts_at_p0(model):
    b = _batch(seed=5, with_target=False)
    with torch.no_grad():
        assert model(b).equal(model.initial(b))  # R's zero head: training starts at P0
        torch.manual_seed(7)  # a head off zero, so that all of R shapes the pinned output
        torch.nn.init.normal_(model.refiner[-1].weight, std=1e-4)
        out, p0 = model(b), model.initial(b)
    assert out.shape == (2, 1, 32, 32)
    assert (out - p0).abs().max().item() < 1e-4
    assert out.mean().item() == pytest.approx(0.18501234, abs=1e-6)
    assert out.std().item() == pytest.approx(0.00131443, rel=1e-4)


def test_stage_schedule_follows_the_epoch_fraction(cfg, model):
    assert model.stage1_epochs == 90  # round(0.6 * 150)
    assert [model.stage(e) for e in (0, 89, 90, 149)] == [1, 1, 2, 2]
    short = CascadeSTF(max_epochs=3)
    assert [short.stage(e) for e in range(3)] == [1, 1, 2]


def test_each_stage_trains_only_its_own_parameters(model):
    b = _batch()
    stage1 = {n for n, _ in model.named_parameters() if n.startswith("stage1.")}
    assert _trained(model, b, epoch=0) == stage1
    torch.nn.init.normal_(model.refiner[-1].weight, std=1e-4)  # past its zero start, gradients reach all of R
    assert _trained(model, b, epoch=90) == {n for n, _ in model.named_parameters()} - stage1


def test_stage1_loss_is_masked_mse_plus_half_one_minus_ssim(model):
    b = _batch()
    terms = model.compute_loss(b, epoch=0)
    assert set(terms) == {"loss", "stage", "mse", "ssim"} and terms["stage"].item() == 1
    torch.testing.assert_close(terms["loss"].detach(), terms["mse"] + 0.5 * (1 - terms["ssim"]))
    changed = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], 5.0))
    torch.testing.assert_close(model.compute_loss(changed, 0)["loss"], terms["loss"])


def test_stage2_is_self_supervised_at_the_modis_scale(model):
    """No target key is read; with R's head at zero F2^ = P0, so the detail term is 0 and the fidelity term is the
    L1 between the 32 px means of P0 and C2."""
    b = _batch(size=64, with_target=False)
    with torch.no_grad():
        model.refiner[-1].weight.zero_()
        terms = model.compute_loss(b, epoch=90)
        p0 = model.initial(b)
    assert set(terms) == {"loss", "stage", "coarse", "detail"} and terms["stage"].item() == 2
    assert terms["detail"].item() == 0.0
    expected = (coarse_pool(p0, 32) - coarse_pool(b["coarse_tgt"], 32)).abs().mean()
    torch.testing.assert_close(terms["loss"], expected)


def test_config_errors():
    with pytest.raises(ConfigError, match="stage2_transductive=true .* not implemented yet"):
        CascadeSTF(max_epochs=10, stage2_transductive=True)
    with pytest.raises(ConfigError, match="stage1_fraction=0"):
        CascadeSTF(max_epochs=10, stage1_fraction=0)
