"""mlffgan: parameter split, pinned forward, AdaIN + change-mask fusion, masked loss, the §6 PatchGAN."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.mlffgan import MLFFGAN, adain
from tests.models.helpers import model_conf

CONF = model_conf("mlffgan")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def net(cfg) -> MLFFGAN:
    torch.manual_seed(0)
    return instantiate(cfg.net)


def batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    out["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return out


def test_config_declares_the_official_run(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple, cfg.fixed_size) == (
        "mlffgan", "official-code", "adversarial", 1, 16, None)
    assert list(cfg.inputs) == ["fine_ref", "coarse_ref", "coarse_tgt"]
    for opt in (cfg.optimizer, cfg.d_optimizer):
        assert (opt.lr, tuple(opt.betas), opt.weight_decay) == (2e-4, (0.9, 0.999), 0.0)
    assert cfg.scheduler is None and cfg.adversarial.regenerate_for_g is True
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs, cfg.train.seed) == (4, 256, 200, 2020)
    assert (cfg.net.adv_weight, cfg.net.gan_mode, cfg.net.cosine_weight) == (2e-2, "lsgan", 0.0)


def test_parameter_counts_per_block(cfg, net):
    g = net.generator
    assert count(g.coarse_encoder) == count(g.fine_encoder) == 1_965_280
    assert (count(g.fusions), count(g.ups), count(g.head)) == (178_079, 1_785_040, 23_681)
    assert count(g) == cfg.params_target == 5_917_360
    assert count(net.discriminator) == 2_765_505


def test_pinned_forward_value(net):
    net.eval()
    with torch.no_grad():
        out = net(batch())
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(-0.02905441, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.02818678, abs=1e-5)


def test_adain_gives_the_content_the_style_statistics():
    content, style = torch.randn(2, 3, 8, 8), 3 + 2 * torch.randn(2, 3, 8, 8)
    out = adain(content, style)
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-4)
    assert torch.allclose(out.flatten(2).std(2), style.flatten(2).std(2), rtol=1e-3)


def test_fusion_mask_picks_coarse_target_or_restyled_fine_features():
    torch.manual_seed(0)
    fuse = MLFFGAN().generator.fusions[0].eval()
    c1, c2, f1 = (torch.randn(1, 16, 8, 8) for _ in range(3))
    with torch.no_grad():
        fuse.mask[1].bias.fill_(50.0)  # M -> 1: the coarse target's features
        assert torch.allclose(fuse(c1, c2, f1), c2, atol=1e-5)
        fuse.mask[1].bias.fill_(-50.0)  # M -> 0: F1 restyled to C2
        assert torch.allclose(fuse(c1, c2, f1), adain(f1, c2), atol=1e-5)


def test_loss_is_l1_plus_ms_ssim_on_observed_pixels(net):
    net.eval()
    b = batch(64)
    with torch.no_grad():
        pred = net(b)
        parts = net.compute_loss(b, 0, pred=pred)
        assert float(parts["l1"]) == pytest.approx(float(masked_l1(pred, b["fine_tgt"], b["valid_tgt"])), abs=1e-7)
        assert float(parts["loss"]) == pytest.approx(float(parts["l1"] + parts["visual"]), abs=1e-6)
        b2 = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], b["fine_tgt"] + 3.0))
        assert float(net.compute_loss(b2, 0, pred=pred)["loss"]) == pytest.approx(float(parts["loss"]), abs=1e-6)


def test_discriminator_sees_image_and_coarse_target_and_returns_a_35_map_at_256(net):
    b = batch()
    x = net.d_input(b, b["fine_tgt"])
    assert torch.equal(x, torch.cat([b["fine_tgt"], b["coarse_tgt"]], 1))
    net.discriminator.eval()
    with torch.no_grad():
        assert net.discriminate(torch.rand(1, 2, 256, 256)).shape == (1, 1, 35, 35)


def test_config_errors():
    with pytest.raises(ConfigError, match="cosine_weight"):
        MLFFGAN(cosine_weight=1.0)
    with pytest.raises(ConfigError, match="gan_mode"):
        MLFFGAN(gan_mode="hinge")
