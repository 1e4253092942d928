"""gan_generic: the generator is ae_generic's network with skips, the 70x70 PatchGAN on [C2, F], the masked L1."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.data.normalization import AffineNorm
from stf_bench.models.ae_generic import AEGeneric
from stf_bench.models.blocks.patchgan import PatchDiscriminator
from stf_bench.models.gan_generic import GANGeneric
from tests.models.helpers import model_conf

CONF = model_conf("gan_generic")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture
def net(cfg) -> GANGeneric:
    torch.manual_seed(0)
    return instantiate(cfg.net)


def batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    out["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return out


def test_config_declares_the_pix2pix_setup(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple) == (
        "gan_generic", "reconstructed", "adversarial", 1, 4)
    for opt in (cfg.optimizer, cfg.d_optimizer):
        assert (opt._target_, opt.lr, tuple(opt.betas)) == ("torch.optim.Adam", 2e-4, (0.5, 0.999))
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (8, 256, 200)


def test_generator_is_ae_generic_with_skips_and_counts(cfg, net):
    assert type(net.generator) is AEGeneric and net.generator.decoder.skips
    assert count(net.generator) == cfg.params_target == 790_593
    assert count(net.discriminator) == 2_764_609
    ae = OmegaConf.load(CONF.parent / "ae_generic.yaml").net
    assert {k: v for k, v in cfg.net.generator.items() if k not in ("skips", "identity_weight")} == \
        {k: v for k, v in ae.items() if k not in ("skips", "identity_weight")}  # the same template underneath


def test_pinned_forward_value(net):
    net.eval()
    with torch.no_grad():
        out = net(batch())
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(-0.07877431, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.00246069, abs=1e-6)


def test_patchgan_sees_70x70_patches():
    torch.manual_seed(0)
    d = PatchDiscriminator(2).eval()
    x = torch.rand(1, 2, 128, 128, requires_grad=True)
    scores = d(x)
    assert scores.shape == (1, 1, 14, 14)
    scores[0, 0, 7, 7].backward()
    rows, cols = x.grad.abs().sum((0, 1)).nonzero(as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (70, 70)


def test_discriminator_is_conditioned_on_the_coarse_target(net):
    b = batch()
    x = net.d_input(b, b["fine_tgt"])
    assert torch.equal(x, torch.cat([b["coarse_tgt"], b["fine_tgt"]], 1))
    assert net.discriminate(x).shape == (2, 1, 2, 2)  # logits, one per patch
    assert (net.adv_weight, net.gan_mode, net.l1_weight) == (1.0, "bce", 100.0)


def test_norm_reaches_the_generator(net):
    norm = AffineNorm(offset=250.0, scale=60.0)
    net.norm = norm
    assert net.generator.norm is norm and net.norm is norm


def test_loss_is_100_masked_l1_and_reuses_pred(net):
    b = batch()
    pred = net(b)
    terms = net.compute_loss(b, epoch=0, pred=pred)
    valid = b["valid_tgt"]
    l1 = (pred - b["fine_tgt"]).abs()[valid].mean()
    torch.testing.assert_close(terms["loss"], 100 * l1)
    torch.testing.assert_close(net.compute_loss(b, 0)["loss"], terms["loss"])
    cloudy = dict(b, fine_tgt=torch.where(valid, b["fine_tgt"], torch.tensor(5.0)))
    torch.testing.assert_close(net.compute_loss(cloudy, 0, pred=pred)["loss"], terms["loss"])
    terms["loss"].backward()
    assert all(p.grad is None for p in net.discriminator.parameters())
