"""The adversarial module's `bce` GAN mode (pix2pix, used by gan_generic): its losses and a module built on it."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from stf_bench.training.adversarial import GAN_MODES, AdversarialModule, d_loss, g_loss

REPO = Path(__file__).resolve().parents[2]


def test_bce_losses_are_pix2pix_on_logits():
    real, fake = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, -3.0]])
    softplus = torch.nn.functional.softplus  # -log(sigmoid(x)) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)
    expected_d = 0.5 * (softplus(-real).mean() + softplus(fake).mean())
    torch.testing.assert_close(d_loss("bce", real, fake), expected_d)
    torch.testing.assert_close(g_loss("bce", fake), softplus(-fake).mean())
    # an undecided discriminator (logit 0 everywhere): both losses are log 2
    zero = torch.zeros(2, 1, 3, 3)
    assert float(d_loss("bce", zero, zero)) == pytest.approx(0.693147, abs=1e-6)
    assert float(g_loss("bce", zero)) == pytest.approx(0.693147, abs=1e-6)
    # a confident, correct discriminator: D loss near 0, G loss large
    assert float(d_loss("bce", torch.full((4,), 20.0), torch.full((4,), -20.0))) < 1e-8
    assert float(g_loss("bce", torch.full((4,), -20.0))) == pytest.approx(20.0, abs=1e-6)
    assert "bce" in GAN_MODES


def test_gan_generic_trains_in_the_adversarial_module():
    cfg = OmegaConf.merge({"model": OmegaConf.load(REPO / "conf" / "model" / "gan_generic.yaml")})
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    module = AdversarialModule(model_cfg, {"offset": 250.0, "scale": 60.0}, 60.0, {})
    assert module.net.generator.norm is module.norm  # the generator gets the normalization (ICW's epsilon)
    (g_opt, d_opt), schedulers = module.configure_optimizers()
    assert schedulers == []
    for opt, n in ((g_opt, 790_593), (d_opt, 2_764_609)):
        (group,) = opt.param_groups
        assert (group["lr"], group["betas"], sum(p.numel() for p in group["params"])) == (2e-4, (0.5, 0.999), n)
