"""EMSNet (reconstructed, models.md part 2 §14): MSNet's blocks with its three changes (dilated Extract Net, LeFF,
learned per-pixel reference weights), exact block counts, a pinned output."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.blocks.multistream import MultiStream
from stf_bench.models.emsnet import EMSNet
from stf_bench.models.msnet import MSNet
from tests.models.helpers import model_conf

CONF = model_conf("emsnet")
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def batch(size, seed=0, b=1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 1, size, size, generator=g) for k in KEYS}


def small():
    """The same design on a 2 x 2 token grid (32 px), for behaviour checks."""
    torch.manual_seed(0)
    return EMSNet(fixed_size=32)


def test_yaml_matches_msnet_training(cfg):
    ms = OmegaConf.load(CONF.with_name("msnet.yaml"))
    for key in ("n_refs", "fixed_size", "size_multiple", "inputs", "optimizer", "scheduler", "loss"):
        assert cfg[key] == ms[key], key
    assert (cfg.train.batch_size, cfg.train.max_epochs) == (ms.train.batch_size, ms.train.max_epochs)


def test_design_counts(cfg):
    net = instantiate(cfg.net)
    assert isinstance(net, MSNet) and isinstance(net.streams, MultiStream)  # shared blocks, not a copy
    assert count(net) == cfg.params_target == 989_612
    assert count(net.streams.transformer) == 912_512 and count(net.streams.extract) == 76_801
    assert count(net.weighting) == 298 and net.streams.blend.numel() == 1
    dw = net.streams.transformer.blocks[0].mlp.dw
    assert (dw.groups, dw.in_channels, dw.kernel_size) == (512, 512, (3, 3))  # LeFF on the 16 x 16 token grid
    assert [b.dilation for b in net.streams.extract.branches] == [(1, 1), (2, 2), (3, 3)]


def test_weights_sum_to_one_and_select_a_reference():
    net = small().eval()
    x = batch(32, seed=2)
    with torch.no_grad():
        p1, p3 = net.predictions(x)
        w = net.weighting((x["coarse_tgt"] - x["coarse_ref"]).abs(), (x["coarse_tgt"] - x["coarse_ref2"]).abs())
        torch.testing.assert_close(w.sum(1), torch.ones(1, 32, 32))
        torch.testing.assert_close(net(x), w[:, :1] * p1 + w[:, 1:] * p3)
        last = net.weighting.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0]))
        torch.testing.assert_close(net(x), 0.5 * (p1 + p3))  # equal logits: MSNet's average
        last.bias.copy_(torch.tensor([20.0, -20.0]))
        torch.testing.assert_close(net(x), p1)


def test_weighting_reads_the_absolute_coarse_changes():
    net = small().eval()
    x = batch(32, seed=4)
    y = {**x, "coarse_ref": 2 * x["coarse_tgt"] - x["coarse_ref"], "coarse_ref2": 2 * x["coarse_tgt"] - x["coarse_ref2"]}
    with torch.no_grad():  # mirrored references: same |C2 - C_k|, so the same weights
        w_x = net.weighting((x["coarse_tgt"] - x["coarse_ref"]).abs(), (x["coarse_tgt"] - x["coarse_ref2"]).abs())
        w_y = net.weighting((y["coarse_tgt"] - y["coarse_ref"]).abs(), (y["coarse_tgt"] - y["coarse_ref2"]).abs())
    torch.testing.assert_close(w_x, w_y)


def test_pinned_output(cfg):
    torch.manual_seed(0)
    net = instantiate(cfg.net).eval()
    with torch.no_grad():
        out = net(batch(256, seed=3))
    assert out.shape == (1, 1, 256, 256)
    assert float(out.mean()) == pytest.approx(PINNED[0], abs=1e-5)
    assert float(out.std()) == pytest.approx(PINNED[1], abs=1e-5)


PINNED = (0.5093530416488647, 0.3487284779548645)  # recorded after the checks above passed
