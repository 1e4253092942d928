"""DCSTFN: exact 1-band parameter counts, the native-resolution coarse input (pooled by 16), the coarse_pool: 1
alternative, the official fusion rule and training recipe."""

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.errors import ConfigError
from stf_bench.models.dcstfn import DCSTFN
from tests.models.helpers import model_conf, n_trainable

CONF = model_conf("dcstfn")


def _model(coarse_pool=16, seed=0):
    """Default initialisation with the weights spread x3, so that the output is far from constant."""
    torch.manual_seed(seed)
    net = DCSTFN(in_ch=1, coarse_pool=coarse_pool).eval()
    for p in net.parameters():
        p.data.mul_(3.0)
    return net


def _batch(size=32, seed=0, block=16):
    """F1 random; C1, C2 constant on block x block squares (native coarse pixels on the fine grid)."""
    g = torch.Generator().manual_seed(seed)
    coarse = [F.interpolate(torch.rand(2, 1, size // block, size // block, generator=g), scale_factor=block)
              for _ in range(2)]
    return {"fine_ref": torch.rand(2, 1, size, size, generator=g), "coarse_ref": coarse[0], "coarse_tgt": coarse[1]}


def test_config_and_recipe(cfg):
    net = instantiate(cfg.net)
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.size_multiple, net.coarse_pool) == ("dcstfn", "official-code", 1, 16, 16)
    assert n_trainable(net) == cfg.params_target == 408_961
    assert OmegaConf.to_container(cfg.loss) == {"terms": [{"name": "mse", "weight": 1.0}]}
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (32, 160, 30)
    opt = instantiate(cfg.optimizer)(params=net.parameters())
    sched = instantiate(cfg.scheduler)(optimizer=opt)
    for _ in range(2):  # Lightning steps it once per epoch
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.75**2)


@pytest.mark.parametrize("coarse_pool", (16, 1))
def test_parameter_counts_per_branch(coarse_pool):
    net = _model(coarse_pool)
    assert (n_trainable(net.coarse_branch), n_trainable(net.fine_branch), n_trainable(net.reconstruction)) == (203_456, 129_600, 75_905)


@pytest.mark.parametrize("coarse_pool,size", ((16, 32), (16, 64), (1, 32), (1, 34)))
def test_output_has_the_input_size(coarse_pool, size):
    out = _model(coarse_pool)(_batch(size, block=2))
    assert out.shape == (2, 1, size, size) and torch.isfinite(out).all()


def test_sizes_off_the_multiple_and_unknown_pools_are_rejected():
    with pytest.raises(ValueError, match="multiples of 16"):
        _model(16)(_batch(40, block=8))
    with pytest.raises(ConfigError, match="coarse_pool=8"):
        DCSTFN(coarse_pool=8)


def test_native_branch_sees_only_the_16_px_block_means():
    """Detail inside a 16 x 16 block is pooled away; the coarse_pool: 1 variant sees it."""
    batch = _batch()
    g = torch.Generator().manual_seed(5)
    detail = torch.rand(2, 1, 32, 32, generator=g)
    detail = detail - F.interpolate(F.avg_pool2d(detail, 16), scale_factor=16)  # zero mean on every block
    moved = dict(batch, coarse_tgt=batch["coarse_tgt"] + detail)
    net, fine_grid = _model(16), _model(1)
    with torch.no_grad():
        torch.testing.assert_close(net(moved), net(batch), atol=1e-5, rtol=1e-5)
        assert (fine_grid(moved) - fine_grid(batch)).abs().max() > 1e-4


def test_coarse_change_enters_as_a_difference():
    """Fine(F1) - Coarse(C1) + Coarse(C2): equal coarse images leave the fine branch alone, whatever they are."""
    batch = _batch()
    net = _model()
    with torch.no_grad():
        same_a = net(dict(batch, coarse_tgt=batch["coarse_ref"]))
        same_b = net(dict(batch, coarse_ref=batch["coarse_tgt"]))
        torch.testing.assert_close(same_a, same_b, atol=1e-5, rtol=1e-5)
        assert (net(batch) - same_a).abs().max() > 1e-4


def test_pinned_forward_value():
    net = _model()
    with torch.no_grad():
        out = net(_batch(seed=1))
    assert out.mean().item() == pytest.approx(7.542736, rel=1e-5)
    assert out.std().item() == pytest.approx(3.131092, rel=1e-5)

