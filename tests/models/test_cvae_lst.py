"""cvae_lst: exact design counts (E_q training-only), the two training phases, the KL ramp, masking and ICW."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.data.normalization import AffineNorm
from stf_bench.models.cvae_lst import gaussian_kl
from stf_bench.models.param_table import inference_parameters
from tests.models.helpers import model_conf, n_params

CONF = model_conf("cvae_lst")
PRETRAIN, CVAE = 0, 100  # epochs of the two phases under the default 30 pre-training epochs


@pytest.fixture
def model(cfg):
    torch.manual_seed(0)
    net = instantiate(cfg.net)
    net.norm = AffineNorm(offset=250.0, scale=60.0)
    return net


def _batch(two_refs=True, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt"] + (["fine_ref2", "coarse_ref2"] if two_refs else [])
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in keys}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def _one_ref(batch, second=False):
    out = {k: v for k, v in batch.items() if not k.endswith("2")}
    if second:
        out.update(fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"])
    return out


def test_config_declares_the_contract(cfg, model):
    assert (cfg.id, cfg.label, cfg.family, cfg.n_refs, cfg.min_refs, cfg.size_multiple) == (
        "cvae_lst", "reconstructed", "AE", 2, 1, 4)
    assert cfg.params_target == 641_697 and cfg.loss is None
    assert (model.max_epochs, model.pretrain_epochs, model.beta) == (cfg.train.max_epochs, 30, 1e-3) == (150, 30, 1e-3)
    assert (cfg.optimizer.lr, cfg.train.batch_size, cfg.train.patch_size) == (2e-4, 8, 128)


def test_parameter_counts_per_part(model):
    assert n_params(model.condition_encoder) == 291_136
    assert n_params(model.decoder) == 350_561
    assert n_params(model.recognition_encoder) == 291_424
    assert inference_parameters(model) == 641_697  # E_q is training-only
    assert n_params(model) == 641_697 + 291_424


def test_kl_ramp(model):
    assert [model.beta_at(e) for e in (0, 29, 30)] == [0.0, 0.0, 0.0]
    # 20 % of the 120 CVAE epochs: 24 epochs from 0 to 1e-3
    assert model.beta_at(42) == pytest.approx(0.5e-3) and model.beta_at(54) == pytest.approx(1e-3)
    assert model.beta_at(149) == pytest.approx(1e-3)


def test_gaussian_kl_values():
    mu, logvar = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    assert gaussian_kl(mu, logvar, mu, logvar).abs().max() == 0
    one = torch.ones(1)
    assert float(gaussian_kl(one, 0 * one, 0 * one, 0 * one)) == pytest.approx(0.5)  # KL(N(1,1) || N(0,1))
    assert float(gaussian_kl(0 * one, 0 * one, 0 * one, one.log() + 2 * torch.tensor(2.0).log())) == pytest.approx(
        torch.tensor(2.0).log().item() + 1 / 8 - 0.5)  # KL(N(0,1) || N(0,4)) = ln 2 + 1/8 - 1/2


def test_forward_shapes_and_prediction_is_deterministic(model):
    for two_refs in (False, True):
        for size in (32, 64):
            out = model(_batch(two_refs, size))
            assert out.shape == (2, 1, size, size) and torch.isfinite(out).all()
    model.train()
    batch = _batch()
    torch.testing.assert_close(model(batch), model(batch))  # z = mu_p even in train mode


def test_pinned_forward_value(model):
    with torch.no_grad():
        out = model.eval()(_batch(seed=5))
    assert float(out.mean()) == pytest.approx(0.4801852, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.4152185, abs=1e-5)


def test_pretraining_is_deterministic_without_recognition_encoder(model):
    batch = _batch()
    terms = model.compute_loss(batch, PRETRAIN)
    assert set(terms) == {"loss", "charbonnier", "ssim"}
    torch.testing.assert_close(model.compute_loss(batch, PRETRAIN)["loss"], terms["loss"])
    torch.testing.assert_close(model.compute_loss(batch, PRETRAIN, pred=model(batch))["loss"], terms["loss"])
    terms["loss"].backward()
    assert all(p.grad is None for p in model.recognition_encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_cvae_phase_samples_from_q_and_trains_it(model):
    batch = _batch()
    torch.manual_seed(1)
    terms = model.compute_loss(batch, CVAE)
    assert set(terms) == {"loss", "charbonnier", "ssim", "kl", "beta"}
    assert float(terms["beta"]) == pytest.approx(1e-3) and float(terms["kl"]) > 0
    expected = terms["charbonnier"] + 0.1 * (1 - terms["ssim"]) + 1e-3 * terms["kl"]
    torch.testing.assert_close(terms["loss"].detach(), expected)
    torch.manual_seed(2)
    assert not torch.allclose(model.compute_loss(batch, CVAE)["loss"], terms["loss"])  # z is sampled
    terms["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.recognition_encoder.parameters())


@pytest.mark.parametrize("epoch", (PRETRAIN, CVAE))
def test_loss_ignores_unobserved_target_pixels(model, epoch):
    batch = _batch()
    torch.manual_seed(3)
    terms = model.compute_loss(batch, epoch)
    for fill in (5.0, torch.nan):
        changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], fill))
        torch.manual_seed(3)
        torch.testing.assert_close(model.compute_loss(changed, epoch)["loss"], terms["loss"])


def test_two_references_combined_with_icw(model):
    batch = _batch()
    model.eval()
    with torch.no_grad():
        same = dict(batch, fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
        torch.testing.assert_close(model(same), model(_one_ref(batch)))
        swapped = dict(batch, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"],
                       fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
        torch.testing.assert_close(model(swapped), model(batch))
        p1, p3, both = model(_one_ref(batch)), model(_one_ref(batch, second=True)), model(batch)
        lo, hi = torch.minimum(p1, p3), torch.maximum(p1, p3)
        assert ((both >= lo - 1e-6) & (both <= hi + 1e-6)).all() and not torch.allclose(both, p1)


def test_two_references_need_the_normalization(model):
    model.norm = None
    with pytest.raises(RuntimeError, match="norm"):
        model(_batch())
    assert model(_batch(two_refs=False)).shape == (2, 1, 32, 32)


def test_incomplete_second_reference_is_rejected(model):
    batch = _batch()
    del batch["coarse_ref2"]
    with pytest.raises(ValueError, match="coarse_ref2"):
        model(batch)
