"""ctstfm (reconstructed, models.md part 2 §15): hybrid CNN-Swin U-Net, internal padding to a multiple of 64."""

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.ctstfm import CTSTFM
from stf_bench.training.losses import CompositeLoss
from tests.models.helpers import model_conf

CONF = model_conf("ctstfm")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def net(cfg) -> CTSTFM:
    torch.manual_seed(0)
    return instantiate(cfg.net).eval()


def batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "coarse_ref", "coarse_tgt")}


def test_config(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.fixed_size) == (
        "ctstfm", "reconstructed", "supervised", 1, None)
    assert set(cfg.inputs) == {"fine_ref", "coarse_ref", "coarse_tgt"}
    assert (cfg.optimizer.lr, cfg.scheduler.eta_min) == (2e-4, 1e-6)
    assert cfg.scheduler._target_.endswith("CosineAnnealingLR")
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (8, 256, 100)
    loss = CompositeLoss(**cfg.loss)
    assert [(n, w, k) for n, w, k in loss.terms] == [("l1", 1.0, {}), ("ms_ssim", 1.0, {"variant": "product"})]


def test_parameter_counts(cfg, net):
    assert count(net.stem) == 1_184 and count(net.head) == 289
    assert [count(b) for b in net.encoder] == [38_564, 150_856, 596_624]
    assert count(net.bottleneck) == 2_372_896
    assert [count(d) for d in net.down] == [8_256, 32_896, 131_328]
    assert [count(u) + count(m) + count(b) for u, m, b in zip(net.up, net.merge, net.decoder)] == [
        760_720, 191_944, 48_868]
    assert count(net) == cfg.params_target == 4_334_425


def test_hybrid_block_swin_settings(net):
    for block, ch in ((net.encoder[0], 32), (net.encoder[2], 128), (net.bottleneck, 256)):
        regular, shifted = block.swin.blocks
        assert (regular.attn.num_heads, regular.window, regular.shift, shifted.shift) == (ch // 16, 8, 0, 4)
        assert regular.mlp.fc1.out_features == 2 * ch and regular.attn.qkv.bias is not None
    assert net.size_multiple == 64


def test_input_padded_to_64_and_output_cropped(net):
    b = batch(40)
    with torch.no_grad():
        out = net(b)
        # the same network on the input reflect-padded by hand to 64, then cropped
        padded = {k: F.pad(v, (0, 24, 0, 24), mode="reflect") for k, v in b.items()}
        ref = net(padded)[..., :40, :40]
        assert out.shape == (2, 1, 40, 40) and torch.allclose(out, ref, atol=1e-6)
        assert net(batch(32)).shape == (2, 1, 32, 32)  # too small to reflect: replicated instead


def test_pinned_forward_value(net):
    with torch.no_grad():
        out = net(batch(64))
    assert out.shape == (2, 1, 64, 64)
    assert float(out.mean()) == pytest.approx(0.69719976, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.28765321, abs=1e-5)


def test_bad_head_dim_raises():
    with pytest.raises(ConfigError, match="head_dim"):
        CTSTFM(widths=(24, 48, 96, 192))
