"""vit_generic: design counts per block, the sin-cos positions, patch sizes, the delta-baseline residual, the
warm-up + cosine schedule and the composite loss (small inputs: 32-48 px)."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.schedule import warmup_cosine
from stf_bench.models.vit_generic import ViTGeneric, sincos_position_embedding
from stf_bench.training.losses import CompositeLoss
from tests.models.helpers import model_conf

CONF = model_conf("vit_generic")
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def net(cfg) -> ViTGeneric:
    torch.manual_seed(0)
    return instantiate(cfg.net).eval()


def batch(height=32, width=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(2, 1, height, width, generator=g) for k in KEYS}


def test_config_declares_the_design(cfg):
    assert (cfg.id, cfg.label, cfg.family, cfg.n_refs, cfg.size_multiple) == ("vit_generic", "reconstructed", "ViT", 1, 8)
    assert (cfg.optimizer._target_, cfg.optimizer.lr, cfg.optimizer.weight_decay) == ("torch.optim.AdamW", 2e-4, 0.05)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (8, 128, 200)


def test_parameter_counts_per_block(cfg, net):
    assert count(net) == cfg.params_target == 10_730_816
    assert count(net.spatial_encoder) == count(net.temporal_encoder) == 3_159_552
    assert count(net.decoder) == 4_214_272
    assert [count(net.spatial_embed), count(net.temporal_embed), count(net.fusion), count(net.head)] == [
        16_640, 33_024, 131_328, 16_448]
    layer = net.spatial_encoder.layers[0]  # torch's standard pre-norm GELU layer
    assert layer.norm_first and layer.self_attn.batch_first and layer.activation is torch.nn.functional.gelu


def test_layers_start_from_different_weights(net):
    first, second = net.spatial_encoder.layers[:2]
    assert not torch.equal(first.linear1.weight, second.linear1.weight)
    assert not torch.equal(first.self_attn.in_proj_weight, second.self_attn.in_proj_weight)


def test_pinned_forward_value(net):
    with torch.no_grad():
        out = net(batch())
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(0.60065907, abs=1e-5)
    assert float(out.std()) == pytest.approx(1.30671191, abs=1e-5)


def test_sincos_positions():
    pos = sincos_position_embedding(3, 4, 16)
    assert pos.shape == (12, 16) and pos.abs().max() <= 1
    # token (0, 0): sin 0 = 0 and cos 0 = 1 in each half
    torch.testing.assert_close(pos[0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))
    # row-major like the tokens: token 5 is row 1, column 1; the y half depends on the row only
    torch.testing.assert_close(pos[5, :8], pos[4, :8])
    torch.testing.assert_close(pos[5, 8:], pos[1, 8:])
    assert torch.cdist(pos, pos).add(torch.eye(12)).min() > 0.1  # every token has its own position


def test_any_multiple_of_the_patch_size(net):
    with torch.no_grad():
        assert net(batch(24, 40)).shape == (2, 1, 24, 40)
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        net(batch(36, 40))


def test_residual_adds_the_delta_baseline(cfg):
    b = batch()
    for residual in (True, False):
        torch.manual_seed(0)
        net = instantiate(OmegaConf.merge(cfg.net, {"residual": residual, "encoder_depth": 1, "decoder_depth": 1}))
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.fill_(0.25)
            out = net.eval()(b)
        expected = 0.25 + (b["fine_ref"] + b["coarse_tgt"] - b["coarse_ref"] if residual else 0)
        torch.testing.assert_close(out, expected + torch.zeros_like(out))


def test_unpatchify_inverts_the_patch_cut(net):
    x = torch.arange(2 * 16 * 24, dtype=torch.float32).reshape(2, 1, 16, 24)
    p = net.patch
    tokens = x.reshape(2, 1, 2, p, 3, p).permute(0, 2, 4, 1, 3, 5).reshape(2, 6, p * p)  # row-major patches
    torch.testing.assert_close(net.unpatchify(tokens, 16, 24), x)


def test_config_errors():
    with pytest.raises(ConfigError, match="model.size_multiple=12 is not a multiple of model.net.patch=8"):
        ViTGeneric(size_multiple=12, encoder_depth=1, decoder_depth=1)
    with pytest.raises(ConfigError, match="model.net.dim=250"):
        ViTGeneric(dim=250, heads=5, encoder_depth=1, decoder_depth=1)


def test_warmup_then_cosine_schedule_from_yaml(cfg):
    factors = [warmup_cosine(e, warmup_epochs=10, max_epochs=200) for e in range(201)]
    assert factors[:10] == pytest.approx([0.1 * (e + 1) for e in range(10)])
    assert factors[10] == 1.0 and factors[105] == pytest.approx(0.5) and factors[200] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert warmup_cosine(0, warmup_epochs=10, max_epochs=1) == pytest.approx(0.1)  # shorter than its warm-up
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    scheduler = instantiate(cfg.scheduler)(optimizer=opt)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert lrs == pytest.approx([2e-5 * (e + 1) for e in range(10)] + [2e-4, 2e-4 * warmup_cosine(11, 10, 200)])


def test_loss_is_l1_plus_a_tenth_of_one_minus_ssim(cfg):
    loss = CompositeLoss(**cfg.loss)
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    parts = loss(pred, {"fine_tgt": target, "valid_tgt": torch.ones_like(target, dtype=torch.bool)})
    torch.testing.assert_close(parts["loss"], parts["l1"] + 0.1 * parts["ssim"])
    assert float(parts["l1"]) == pytest.approx(float((pred - target).abs().mean()), abs=1e-6)
