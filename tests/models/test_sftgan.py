"""SFT-GAN: parameter counts, pinned output, sparse attention, DySample, Butterworth, seeding, tiling, loss mask."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.prediction import _inner, predict_scene, tile_offsets
from stf_bench.models.sftgan import SFTGAN, DySample, ProbSparseAttention, butterworth_lowpass

YAML = Path(__file__).parents[2] / "conf" / "model" / "sftgan.yaml"
KEYS = ("coarse_ref", "coarse_tgt", "fine_ref")
SMALL = {"fixed_size": 64, "dims": (16, 32, 64, 128), "heads": (1, 1, 2, 2)}


def batch(size, seed=0, b=1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 1, size, size, generator=g) for k in KEYS}


def small(**kw):
    torch.manual_seed(0)
    return SFTGAN(**{**SMALL, **kw})


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return instantiate(OmegaConf.load(YAML).net, fixed_size=256).eval()


def test_parameter_counts_per_block(model):
    g = model.generator
    assert count(g.change_encoder) == count(g.fine_encoder) == 9_987_744
    assert count(g.fusions) == 349_120  # Linear(C, C) at 64/128/256/512
    assert count(g.reduce) + count(g.up) + count(g.up_last) == 220_817 and count(g.gain) == 4
    assert count(g) == 20_545_429  # official 20,547,509 with its unused LayerNorms and groups=2 DySamples
    assert count(model.discriminator) == 6_694_656
    assert abs(count(g) - 20_547_509) / 20_547_509 < 0.02


def test_pinned_full_size_output_and_discriminator_map(model):
    with torch.no_grad():
        y = model(batch(256, b=2))
        d = model.discriminate(y)
    assert y.shape == (2, 1, 256, 256) and d.shape == (2, 1, 13, 13)
    assert y.mean().item() == pytest.approx(0.2418619, abs=1e-5)
    assert y.std().item() == pytest.approx(0.1425497, abs=1e-5)
    assert d.mean().item() == pytest.approx(0.3482679, abs=1e-5)


def test_unselected_queries_receive_the_mean_of_the_values():
    torch.manual_seed(0)
    attn = ProbSparseAttention(8, 1, sr=1)
    x = torch.randn(1, 64, 8) * 3
    seen = {}
    attn.proj.register_forward_hook(lambda m, i, o: seen.setdefault("pre", i[0]))
    attn(x, 8, 8, torch.Generator().manual_seed(0))
    pre = seen["pre"][0]  # (N, C) before the output projection
    v = attn.kv(x)[0, :, 8:]
    mean_rows = torch.isclose(pre, v.mean(0).expand_as(pre), atol=1e-6).all(dim=1)
    assert int((~mean_rows).sum()) == 4  # floor(ln 64) = 4 queries attend for real
    q, k = attn.q(x)[0], attn.kv(x)[0, :, :8]
    chosen = (~mean_rows).nonzero().flatten()
    expected = torch.softmax(q[chosen] @ k.T / 8 ** 0.5, dim=-1) @ v
    torch.testing.assert_close(pre[chosen], expected, rtol=0, atol=1e-5)


def test_dysample_at_zero_offsets_is_bilinear_upsampling():
    up = DySample(4, groups=2)
    torch.nn.init.zeros_(up.offset.weight)
    x = torch.rand(2, 4, 5, 7)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x), expected, rtol=0, atol=1e-5)


def test_butterworth_keeps_a_constant_and_removes_fine_detail():
    flat = torch.full((1, 1, 64, 64), 0.7)
    torch.testing.assert_close(butterworth_lowpass(flat, 10, 2), flat, rtol=0, atol=1e-6)
    checker = (torch.arange(64).view(64, 1) + torch.arange(64).view(1, 64)) % 2 * 1.0
    out = butterworth_lowpass(checker.view(1, 1, 64, 64), 10, 2)
    assert (out - 0.5).abs().max() < 0.01  # the Nyquist pattern is cut, its mean kept


def test_eval_is_deterministic_and_batch_independent_training_follows_the_global_seed():
    net = small().eval()
    a, b = batch(64, seed=1, b=2), batch(64, seed=2, b=2)
    mixed = {k: torch.cat([a[k][:1], b[k][1:]]) for k in KEYS}
    with torch.no_grad():
        ya, ym = net(a), net(mixed)
        torch.testing.assert_close(net(a), ya, rtol=0, atol=0)
    torch.testing.assert_close(ym[:1], ya[:1], rtol=0, atol=1e-6)
    net.train()
    outs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(net(a))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])


def test_tiled_prediction_equals_the_untiled_tiles():
    net = small().eval()
    scene = batch(64, seed=5)
    scene = {k: torch.cat([v, v.flip(-1)[..., :32]], dim=-1) for k, v in scene.items()}  # 64 x 96
    with torch.no_grad():
        tiled = predict_scene(net, scene, fixed_size=64)
        whole = net(batch(64, seed=5))
        torch.testing.assert_close(predict_scene(net, batch(64, seed=5), fixed_size=64), whole, rtol=0, atol=1e-4)
        cols = tile_offsets(96, 64)
        for off, (c0, c1) in zip(cols, _inner(cols, 64, 96)):
            direct = net({k: v[..., off:off + 64] for k, v in scene.items()})
            torch.testing.assert_close(tiled[..., c0:c1], direct[..., c0 - off:c1 - off], rtol=0, atol=1e-4)


def test_loss_ignores_masked_pixels_and_discriminator_is_unconditional():
    net = small().eval()
    data = batch(64, b=1)
    with torch.no_grad():
        pred = net(data)
    target = pred.clone()
    valid = torch.ones_like(pred, dtype=torch.bool)
    valid[..., :16, :] = False
    target[..., :16, :] += 5.0  # only in masked rows
    data |= {"fine_tgt": target, "valid_tgt": valid}
    assert net.compute_loss(data, 0, pred=pred)["loss"].item() == pytest.approx(0.0, abs=1e-7)
    assert net.d_input(data, pred) is pred and net.gan_mode == "lsgan_sigmoid" and net.adv_weight == 0.01


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="sam_weight"):
        SFTGAN(sam_weight=1.0)
    with pytest.raises(ValueError, match="multiple of 32"):
        SFTGAN(fixed_size=100)
    with pytest.raises(ValueError, match="fixed_size is 64"):
        small()(batch(96))
