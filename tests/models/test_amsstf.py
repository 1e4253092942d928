"""amsstf: parameter split, pinned forward, per-sample temporal attention, one/two pairs, masked loss with Sobel."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.amsstf import AMSSTF, TemporalAttention
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.sobel import sobel_mse
from tests.models.helpers import model_conf

CONF = model_conf("amsstf")
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2", "fine_tgt")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def net(cfg) -> AMSSTF:
    torch.manual_seed(0)
    return instantiate(cfg.net)


def batch(size=32, seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(n, 1, size, size, generator=g) for k in KEYS}
    out["valid_tgt"] = torch.rand(n, 1, size, size, generator=g) > 0.3
    return out


def test_config_declares_the_official_run(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.min_refs, cfg.size_multiple) == (
        "amsstf", "official-code", "adversarial", 2, 1, 4)
    for opt in (cfg.optimizer, cfg.d_optimizer):
        assert (opt.lr, opt.weight_decay) == (1e-4, 1e-2)
    assert (cfg.scheduler._target_, cfg.scheduler.gamma) == ("torch.optim.lr_scheduler.ExponentialLR", 0.99)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (6, 128, 30)
    assert (cfg.net.adv_weight, cfg.net.gan_mode, cfg.net.spectral_weight) == (2e-2, "lsgan", 0.0)


def test_parameter_counts_per_block(cfg, net):
    g = net.generator
    assert count(g.coarse_encoder) == count(g.fine_encoder) == 480_640
    assert [count(level) for level in g.levels] == [99_725, 373_133, 1_454_477]
    assert (count(g.lateral), count(g.head)) == (92_256, 4_769)
    assert count(g) == 2_985_640  # the published 2,988,863 less the never-called CBAM (3,223)
    assert abs(count(g) - cfg.params_target) / cfg.params_target < 0.02
    assert count(net.discriminator) == 2_765_505


def test_pinned_forward_value(net):
    net.eval()
    with torch.no_grad():
        out = net(batch())
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(-0.09794977, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.04351866, abs=1e-5)


def test_temporal_attention_keeps_samples_apart():
    torch.manual_seed(0)
    ta = TemporalAttention(32).eval()
    f1, f3 = torch.randn(3, 32, 8, 8), torch.randn(3, 32, 8, 8)
    with torch.no_grad():
        t1, t3 = ta(f1, f3)
        for i in range(3):  # each sample alone gives the same result as inside the batch
            s1, s3 = ta(f1[i:i + 1], f3[i:i + 1])
            assert torch.allclose(s1, t1[i:i + 1], atol=1e-6) and torch.allclose(s3, t3[i:i + 1], atol=1e-6)
        swapped = ta(f1, f3.roll(1, 0))  # the official batch reshape would pair f1[0] with f1[1]
        assert torch.allclose(swapped[0][1:], ta(f1[1:], f3[:2])[0], atol=1e-6)


def test_whole_model_keeps_samples_apart_in_eval(net):
    net.eval()
    b = batch()
    with torch.no_grad():
        alone = net({k: v[:1] for k, v in b.items()})
        other = net({k: torch.cat([v[:1], torch.rand_like(v[1:])]) if v.dtype != torch.bool else v for k, v in b.items()})
    assert torch.allclose(alone, other[:1], atol=1e-6)


def test_one_pair_is_passed_twice(net):
    net.eval()
    b = batch()
    one = {k: v for k, v in b.items() if not k.endswith("2")}
    with torch.no_grad():
        twice = net(dict(one, fine_ref2=b["fine_ref"], coarse_ref2=b["coarse_ref"]))
        assert torch.equal(net(one), twice)
        assert not torch.allclose(net(b), twice)
    with pytest.raises(ValueError, match="second reference"):
        net(dict(one, fine_ref2=b["fine_ref2"]))


def test_loss_is_l1_ms_ssim_and_sobel_on_observed_pixels(net):
    net.eval()
    b = batch(64)
    with torch.no_grad():
        pred = net(b)
        parts = net.compute_loss(b, 0, pred=pred)
        assert float(parts["l1"]) == pytest.approx(float(masked_l1(pred, b["fine_tgt"], b["valid_tgt"])), abs=1e-7)
        assert float(parts["sobel"]) == pytest.approx(float(sobel_mse(pred, b["fine_tgt"], b["valid_tgt"])), abs=1e-7)
        assert float(parts["loss"]) == pytest.approx(float(parts["l1"] + parts["visual"] + parts["sobel"]), abs=1e-6)
        b2 = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], b["fine_tgt"] + 3.0))
        assert float(net.compute_loss(b2, 0, pred=pred)["loss"]) == pytest.approx(float(parts["loss"]), abs=1e-6)


def test_discriminator_sees_image_and_coarse_target(net):
    b = batch()
    assert torch.equal(net.d_input(b, b["fine_tgt"]), torch.cat([b["fine_tgt"], b["coarse_tgt"]], 1))


def test_config_errors():
    with pytest.raises(ConfigError, match="spectral_weight"):
        AMSSTF(spectral_weight=1.0)
    with pytest.raises(ConfigError, match="gan_mode"):
        AMSSTF(gan_mode="bce")
