"""STFDiff: parameter counts per block, the pinned denoiser, the DDIM schedule, seeded sampling, the masked
objective, the bi variant."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.stfdiff import STFDiff, cosine_alphas_cumprod, ddim_time_pairs

YAML = Path(__file__).parents[2] / "conf" / "model" / "stfdiff.yaml"
ONE = ("fine_ref", "coarse_ref", "coarse_tgt")
TWO = ONE + ("fine_ref2", "coarse_ref2")


def batch(size=16, seed=0, keys=ONE, b=1):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(b, 1, size, size, generator=g) for k in (*keys, "fine_tgt")}
    out["valid_tgt"] = torch.ones(b, 1, size, size, dtype=torch.bool)
    return out


def tiny(**kw):
    """The same topology at width 16 with 3 DDIM steps: the sampling checks do not need the published size."""
    torch.manual_seed(0)
    return STFDiff(**{"dim": 16, "sampling_steps": 3, **kw}).eval()


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def test_yaml_declarations():
    cfg = OmegaConf.load(YAML)
    assert (cfg.lightning_module, cfg.label, cfg.n_refs, cfg.size_multiple, cfg.fixed_size) == \
        ("diffusion", "official-code", 1, 4, None)
    assert cfg.params_target == 7467329 and cfg.loss is None
    assert (cfg.net.timesteps, cfg.net.sampling_steps, cfg.net.eta, cfg.net.n_samples) == (100, 50, 0.0, 1)
    assert dict(cfg.diffusion) == {"ema_decay": 0.995, "ema_every": "epoch", "ema_update_after": 100,
                                   "ema_warmup_power": pytest.approx(2 / 3), "val_sampling_steps": 10}
    assert (cfg.optimizer.lr, cfg.scheduler, cfg.train.batch_size, cfg.train.patch_size) == (1e-3, None, 24, 256)
    assert cfg.train.gradient_clip_val == 1.0  # the trainer's gradient-norm clip reads it


@pytest.mark.parametrize("n_refs, fine, coarse, total", [(1, 640, 1216, 7466689), (2, 1216, 1792, 7467841)])
def test_parameter_count_per_block(n_refs, fine, coarse, total):
    cfg = OmegaConf.load(YAML)
    cfg.n_refs = n_refs
    d = instantiate(cfg.net).denoiser
    assert (count(d.fine_stem), count(d.coarse_stem), count(d.clean_stem), count(d.noisy_stem)) == \
        (fine, coarse, 8256, 640)
    assert count(d.time_mlp) == 82432  # Linear 64->256, GELU, Linear 256->256
    assert count(d.clean_blocks, d.noisy_blocks, d.clean_downs, d.noisy_downs) == 2003328
    assert count(d.clean_mid, d.noisy_mid) == 2493952
    assert count(d.up_blocks, d.ups) == 2724032
    assert count(d.out_block, d.head) == 152193
    assert count(d) == total
    # the catalogue counts the official module, including its unused init_conv (Conv3x3 1->64: 640 parameters)
    assert total + 640 == {1: 7467329, 2: 7468481}[n_refs]


def test_denoiser_output_is_pinned():
    """Full-size denoiser, one evaluation; values recorded after the fidelity check against the official code."""
    torch.manual_seed(0)
    net = STFDiff().eval()
    g = torch.Generator().manual_seed(1)
    x_t, fine, coarse = (torch.rand(1, c, 32, 32, generator=g) * 2 - 1 for c in (1, 1, 2))
    with torch.no_grad():
        out = net.denoise(x_t, torch.tensor([37]), fine, coarse)
    assert out.shape == (1, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(PINNED_MEAN, abs=1e-5)
    assert float(out.std()) == pytest.approx(PINNED_STD, abs=1e-5)


PINNED_MEAN, PINNED_STD = 0.198459, 0.369139


def test_schedule_and_ddim_steps():
    ac = cosine_alphas_cumprod(100)  # alpha_bar_1 = f(1) / f(0), f(t) = cos((t / 100 + 0.008) / 1.008 * pi / 2)^2
    assert ac.shape == (100,) and float(ac[0]) == pytest.approx(0.999369, abs=1e-6) and float(ac[-1]) < 1e-3
    pairs = ddim_time_pairs(100, 50)
    assert len(pairs) == 50 and pairs[0] == (99, 97) and pairs[-1] == (1, -1)
    assert ddim_time_pairs(100, 100)[-1] == (0, -1)


def test_same_seed_same_sample_and_other_seed_differs():
    net, x = tiny(), batch()
    a, b = net(x), net(x)
    assert torch.equal(a, b)  # the generator is re-seeded on every call
    net.sampling_seed = 1
    assert (net(x) - a).abs().max() > 1e-4


def test_n_samples_averages_successive_draws():
    net, x = tiny(), batch()
    fine, coarse = net.condition(x)
    g = torch.Generator().manual_seed(0)
    first, second = net.sample(fine, coarse, g), net.sample(fine, coarse, g)
    assert (first - second).abs().max() > 1e-4
    net.n_samples = 2
    expected = (first + second) / 2
    assert torch.allclose(net(x), (expected + 0.8) / 1.6, atol=1e-6)


def test_x0_is_clipped_to_the_internal_range():
    """The DDIM output is the last clipped x0: [-1, 1] inside, [-0.125, 1.125] in the normalized range."""
    net = tiny()
    with torch.no_grad():
        net.denoiser.head.bias.fill_(50.0)
    out = net(batch())
    assert torch.allclose(out, torch.full_like(out, 1.125))


def test_objective_is_masked_pred_x0_l1_and_forward_reads_declared_inputs_only():
    net = tiny().train()
    x = batch(seed=3, b=2)
    x["valid_tgt"][:, :, :8] = False
    torch.manual_seed(5)
    loss = net.compute_loss(x, 0)
    assert set(loss) == {"loss", "l1"} and loss["loss"].requires_grad
    torch.manual_seed(5)  # the same timestep and noise, by hand: x_t = sqrt(ac) x0 + sqrt(1 - ac) eps
    x0 = 1.6 * torch.where(x["valid_tgt"], x["fine_tgt"], x["coarse_tgt"]) - 0.8  # unobserved F2 pixels: C2
    t = torch.randint(0, 100, (2,))
    x_t = net.sqrt_ac[t].view(-1, 1, 1, 1) * x0 + net.sqrt_1m_ac[t].view(-1, 1, 1, 1) * torch.randn_like(x0)
    out = net.denoise(x_t, t, *net.condition(x))
    assert float(loss["l1"]) == pytest.approx(float((out - x0).abs()[x["valid_tgt"]].mean()), rel=1e-6)
    with pytest.raises(KeyError):
        net.eval()({k: v for k, v in x.items() if k != "coarse_ref"})


def test_bi_variant_reads_the_second_pair():
    net = tiny(n_refs=2)
    x = batch(keys=TWO)
    out = net(x)
    x2 = dict(x, fine_ref2=x["fine_ref2"] + 0.5)
    assert (net(x2) - out).abs().max() > 1e-5
    with pytest.raises(ValueError, match="two_refs"):
        net(batch())


def test_config_errors():
    with pytest.raises(ValueError, match="sampling_steps"):
        STFDiff(dim=16, sampling_steps=200)
    with pytest.raises(ValueError, match="n_refs"):
        STFDiff(dim=16, n_refs=3)
