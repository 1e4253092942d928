"""SwinSTFM and the shared Swin blocks: parameter count, shapes, output range, size checks, shift masking."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.blocks.swin import (
    MASK_VALUE,
    SwinBlock,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from stf_bench.models.swinstfm import CrossWindowAttention, SwinSTFM

YAML = Path(__file__).parents[2] / "conf" / "model" / "swinstfm.yaml"
KEYS = ("coarse_ref", "fine_ref", "coarse_tgt")


def batch(size, seed=0, b=1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 1, size, size, generator=g) for k in KEYS}


def tiny(**kw):
    """Same topology at a fraction of the width, for the checks that do not need the published size."""
    torch.manual_seed(0)
    return SwinSTFM(**{"embed_dim": 32, "depths": (2, 2, 2, 2), **kw})


@pytest.fixture(scope="module")
def cfg():
    return OmegaConf.load(YAML)


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.net).eval()


@pytest.fixture(scope="module")
def output(model):
    with torch.no_grad():
        return model(batch(256))


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_yaml_declarations(cfg):
    assert list(cfg.keys()) == [
        "id", "title", "family", "label", "source", "lightning_module", "n_refs", "size_multiple", "fixed_size",
        "inputs", "train_reference", "params_target", "net", "optimizer", "d_optimizer", "scheduler",
        "scheduler_monitor", "loss", "train",
    ]
    assert (cfg.fixed_size, cfg.size_multiple, cfg.train_reference) == (256, 256, "random")
    assert cfg.scheduler.mode == "max" and cfg.scheduler_monitor == "val/ssim"
    assert [t.name for t in cfg.loss.terms] == ["charbonnier", "ms_ssim"]
    assert (cfg.train.batch_size, cfg.train.max_epochs, cfg.train.seed, cfg.optimizer.lr) == (8, 60, 2021, 1e-4)


def test_parameter_count_matches_official(model, cfg):
    assert count(model) == cfg.params_target == 37_529_845
    assert count(model.coarse_encoder) == count(model.fine_encoder) == 7_545_756
    assert [count(b) for b in model.up_blocks] == [14_844_720, 4_121_512, 934_092, 279_752]
    assert count(model.up_blocks[0].up) == 512 * 2048 * 9 + 2048  # the 512 -> 2048 conv dominates up-block 1
    assert count(model.bottleneck) == 2_109_968 and count(model.head) == 148_289
    assert model.fixed_size == 256 and model.size_multiple == 256


def test_forward_shape_and_finite(output):
    assert output.shape == (1, 1, 256, 256)
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("activation, head_bias, expected", [
    ("tanh", 0.0, 0.5),                # internal 0 is the middle of the training range
    ("tanh", 10.0, 1.125),             # saturated Tanh: the bound lies 12.5 % of the span above the maximum
    ("tanh", -10.0, -0.125),
    ("none", 10.0, (10.0 + 0.8) / 1.6),  # no bound without the Tanh
])
def test_output_maps_back_from_internal_range(activation, head_bias, expected):
    m = tiny(output_activation=activation).eval()
    last = m.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(head_bias)
        y = m(batch(256))
    assert torch.allclose(y, torch.full_like(y, expected), atol=1e-6)


def test_tanh_output_bounded_even_for_wild_inputs():
    m = tiny().eval()
    wild = {k: 50.0 * v - 25.0 for k, v in batch(256).items()}
    with torch.no_grad():
        y_tanh = m(wild)
        m.output_activation = "none"
        y_lin = m(wild)
    assert y_tanh.min() >= -0.125 and y_tanh.max() <= 1.125
    assert (y_lin.max() - y_lin.min()) > 1.25  # the same network unbounded leaves the Tanh interval


def test_wrong_size_names_fixed_size(model):
    with pytest.raises(ValueError, match=r"200x200.*fixed_size is 256"):
        model(batch(200))


def test_free_size_accepts_multiples_of_256_only():
    m = tiny(fixed_size=None).eval()
    with torch.no_grad():
        assert m(batch(512)).shape == (1, 1, 512, 512)
    with pytest.raises(ValueError, match="size_multiple=256"):
        m(batch(384))


def test_bad_arguments_fail_clearly(model):
    with pytest.raises(KeyError, match="fine_ref"):
        model({k: v for k, v in batch(256).items() if k != "fine_ref"})
    with pytest.raises(ValueError, match="output_activation='sigmoid'"):
        SwinSTFM(output_activation="sigmoid")
    with pytest.raises(ValueError, match="fixed_size 200"):
        SwinSTFM(fixed_size=200)


def test_every_parameter_learns():
    m = tiny()
    m(batch(256)).square().mean().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_window_partition_round_trip():
    x = torch.arange(2 * 16 * 16 * 3, dtype=torch.float32).view(2, 16, 16, 3)
    w = window_partition(x, 8)
    assert w.shape == (8, 64, 3)
    assert torch.equal(w[1, 0], x[0, 0, 8])  # second window of the first image starts at column 8
    assert torch.equal(w[4, 0], x[1, 0, 0])  # windows are batch-major
    assert torch.equal(window_reverse(w, 8, 16, 16), x)


def test_shift_mask_values():
    mask = shifted_window_mask(16, 16, 8, 4)
    assert mask.shape == (4, 64, 64)
    assert set(mask.unique().tolist()) == {0.0, MASK_VALUE}
    zeros_per_row = (mask == 0).sum(-1)
    # interior window: one region; edge windows: two regions of 32 tokens; corner window: four of 16
    assert zeros_per_row[0].unique().tolist() == [64]
    assert zeros_per_row[1].unique().tolist() == [32] and zeros_per_row[2].unique().tolist() == [32]
    assert zeros_per_row[3].unique().tolist() == [16]


def test_shift_mask_blocks_attention_across_the_rolled_boundary():
    """After rolling by -4, pixel (0,0) shares a window with (15,15) but must not be attended from it."""
    torch.manual_seed(0)
    blk = SwinBlock(dim=8, num_heads=2, window=8, shift=4, mlp_ratio=1.0)
    x = torch.randn(1, 16, 16, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(blk(x)[0, 15, 15].sum(), x)
    assert grad[0, 0, 0].abs().max() < 1e-30  # wrapped-around pixel: masked
    assert grad[0, 12, 12].abs().max() > 1e-4  # true neighbour in the same shifted window: attended

    # control: the same rolled windows without the mask do connect the two pixels
    rolled = torch.roll(blk.norm1(x), shifts=(-4, -4), dims=(1, 2))
    out = window_reverse(blk.attn(window_partition(rolled, 8), None), 8, 16, 16)
    (grad,) = torch.autograd.grad(out[0, 11, 11].sum(), x)  # rolled (11,11) is original (15,15)
    assert grad[0, 0, 0].abs().max() > 1e-4


def test_cross_attention_rows_are_renormalised():
    """With values identical at every token, any row-stochastic attention returns proj(v(delta)) exactly."""
    torch.manual_seed(0)
    attn = CrossWindowAttention(dim=8, window=4, num_heads=2)
    c_ref, f_ref, c_tgt = (torch.randn(3, 16, 8) for _ in range(3))
    delta = torch.randn(1, 1, 8).expand(3, 16, 8)
    expected = attn.proj(attn.v(delta))
    assert torch.allclose(attn(c_ref, f_ref, c_tgt, delta), expected, atol=1e-5)
