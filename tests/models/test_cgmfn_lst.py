"""cgmfn_lst (reconstructed, models.md part 2 §10): two encoders, AdaIN + gated change fusion, SN PatchGAN."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.cgmfn_lst import CGMFNLST, adain
from tests.models.helpers import model_conf

CONF = model_conf("cgmfn_lst")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture
def net(cfg) -> CGMFNLST:
    torch.manual_seed(0)
    return instantiate(cfg.net)


def batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    out["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return out


def test_config(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple, cfg.fixed_size) == (
        "cgmfn_lst", "reconstructed", "adversarial", 1, 8, None)
    assert set(cfg.inputs) == {"fine_ref", "coarse_ref", "coarse_tgt"}
    for opt in (cfg.optimizer, cfg.d_optimizer):
        assert (opt.lr, tuple(opt.betas)) == (2e-4, (0.5, 0.999))
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (8, 256, 200)
    n = cfg.net
    assert (n.l1_weight, n.ssim_weight, n.coarse_weight, n.coarse_factor, n.gaussian_sigma) == (1.0, 1.0, 0.5, 32, 0.0)
    assert (n.gan_mode, n.adv_weight) == ("lsgan", 0.02)  # 0.01 * MSE(D(G), 1) = 0.02 * lsgan's 0.5 MSE


def test_parameter_counts(cfg, net):
    assert count(net.fine_encoder) == count(net.coarse_encoder) == 1_955_520  # one coarse encoder for C1 and C2
    assert count(net.fusion) == 96_164 and count(net.decoder) == 1_119_104 and count(net.head) == 289
    generator = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("discriminator."))
    assert generator == cfg.params_target == 5_126_597
    assert count(net.discriminator) == 2_763_713  # §6 PatchGAN (2,765,505) less its three BatchNorms
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.discriminator.modules())
    convs = [m for m in net.discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(hasattr(m, "parametrizations") for m in convs)  # spectral norm on every conv


def test_adain_takes_the_style_statistics():
    g = torch.Generator().manual_seed(1)
    content, style = torch.rand(2, 3, 8, 8, generator=g), 5 + 2 * torch.rand(2, 3, 8, 8, generator=g)
    out = adain(content, style)
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-5)
    assert torch.allclose(out.std((2, 3)), style.std((2, 3)), atol=1e-3)


def test_without_coarse_change_fusion_is_adain(net):
    fusion = net.fusion[0]
    g = torch.Generator().manual_seed(2)
    fine, coarse = torch.rand(1, 32, 8, 8, generator=g), torch.rand(1, 32, 8, 8, generator=g)
    with torch.no_grad():
        a = adain(fine, coarse)
        gate = torch.sigmoid(fusion.gate(torch.cat([torch.zeros_like(fine), a], 1)))
        assert torch.allclose(fusion(fine, coarse, coarse), a + gate * fusion.change.bias[:, None, None])


def test_pinned_forward_value(net):
    with torch.no_grad():
        out = net.eval()(batch())
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(0.52201933, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.29824758, abs=1e-5)


def test_loss_terms_masks_and_coarse_change(net):
    b = batch(64)
    pred = net(b).detach()
    parts = net.compute_loss(b, 0, pred=pred)
    assert set(parts) == {"loss", "l1", "ssim", "coarse"}
    assert float(parts["loss"]) == pytest.approx(float(parts["l1"] + parts["ssim"] + 0.5 * parts["coarse"]), abs=1e-6)
    # unobserved target pixels do not count
    hidden = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], 100.0))
    assert float(net.compute_loss(hidden, 0, pred=pred)["loss"]) == pytest.approx(float(parts["loss"]), abs=1e-6)
    # a prediction whose change matches MODIS's change block by block has no coarse error, whatever the sensor bias
    matched = b["fine_ref"] + b["coarse_tgt"] - b["coarse_ref"]
    biased = dict(b, coarse_ref=b["coarse_ref"] + 3.0, coarse_tgt=b["coarse_tgt"] + 3.0)
    assert float(net.compute_loss(biased, 0, pred=matched)["coarse"]) == pytest.approx(0.0, abs=1e-6)
    assert float(net.compute_loss(b, 0, pred=matched + 0.1)["coarse"]) == pytest.approx(0.1, abs=1e-6)
    assert torch.equal(net.d_input(b, pred), torch.cat([pred, b["coarse_tgt"]], 1))


def test_gaussian_post_filter_smooths_the_residual(net):
    b = batch()
    with torch.no_grad():
        plain = net.eval()(b) - b["fine_ref"]
        net.gaussian_sigma = 1.5
        smooth = net(b) - b["fine_ref"]
    assert float(smooth.mean()) == pytest.approx(float(plain.mean()), abs=1e-3)
    assert float(smooth.diff(dim=-1).abs().mean()) < 0.5 * float(plain.diff(dim=-1).abs().mean())


def test_bad_options_raise():
    with pytest.raises(ConfigError, match="gan_mode"):
        CGMFNLST(gan_mode="hinge")
    with pytest.raises(ConfigError, match="gaussian_sigma"):
        CGMFNLST(gaussian_sigma=-1.0)
