"""MSNet (reconstructed, models.md part 2 §11): exact block counts, the fold of tokens to pixels, the blend and the
average of the two references, size and input checks, a pinned output."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.models.blocks.multistream import DeltaTransformer, ExtractNet
from stf_bench.models.msnet import MSNet
from tests.models.helpers import model_conf

CONF = model_conf("msnet")
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def batch(size, seed=0, b=1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 1, size, size, generator=g) for k in KEYS}


def small(cls=MSNet, **kw):
    """The same design on a 2 x 2 token grid (32 px), for behaviour checks."""
    torch.manual_seed(0)
    return cls(fixed_size=32, **kw)


def test_yaml_declarations(cfg):
    assert (cfg.n_refs, cfg.fixed_size, cfg.size_multiple, cfg.label) == (2, 256, 16, "reconstructed")
    assert set(cfg.inputs) == set(KEYS) and "min_refs" not in cfg
    assert [t.name for t in cfg.loss.terms] == ["mse"]
    assert (cfg.optimizer.lr, cfg.scheduler.factor, cfg.scheduler.patience) == (1e-4, 0.5, 10)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (16, 256, 200)


def test_design_counts(cfg):
    net = instantiate(cfg.net)
    assert count(net) == cfg.params_target == 974_210
    assert count(net.streams.transformer) == 892_032 and count(net.streams.extract) == 82_177
    assert count(net.streams.transformer.blocks[0]) == 198_272 and net.streams.blend.numel() == 1
    assert [b.kernel_size for b in net.streams.extract.branches] == [(3, 3), (5, 5), (7, 7)]


def test_tokens_fold_to_their_own_16px_blocks():
    t = DeltaTransformer(size=64, patch=16)
    torch.nn.init.zeros_(t.out.weight)
    with torch.no_grad():
        t.out.bias.copy_(torch.arange(256.0))
    out = t(torch.rand(1, 1, 64, 64))
    assert out.shape == (1, 1, 64, 64)
    block = torch.arange(256.0).reshape(16, 16)
    for i in range(4):
        for j in range(4):
            assert torch.equal(out[0, 0, 16 * i:16 * i + 16, 16 * j:16 * j + 16], block)


def test_intermediate_blend_and_reference_average():
    net = small().eval()
    x = batch(32, seed=1)
    s = net.streams
    with torch.no_grad():
        t1 = s.transformer(x["coarse_tgt"] - x["coarse_ref"])
        e1 = s.extract(torch.cat([x["fine_ref"], x["coarse_ref"], x["coarse_tgt"]], 1))
        p1, p3 = net.predictions(x)
        out = net(x)
        swapped = net({**x, "fine_ref": x["fine_ref2"], "coarse_ref": x["coarse_ref2"],
                       "fine_ref2": x["fine_ref"], "coarse_ref2": x["coarse_ref"]})
    torch.testing.assert_close(p1, x["fine_ref"] + 0.5 * t1 + 0.5 * e1)  # a = sigmoid(0) at the start
    torch.testing.assert_close(out, 0.5 * (p1 + p3))
    torch.testing.assert_close(swapped, out)  # the two references share the weights
    with torch.no_grad():
        s.blend.fill_(30.0)  # a -> 1: the Transformer stream alone
        torch.testing.assert_close(net.predictions(x)[0], x["fine_ref"] + t1, atol=1e-5, rtol=0)


def test_dilated_extract_net_keeps_the_size():
    e = ExtractNet(dilated=True)
    assert [b.dilation for b in e.branches] == [(1, 1), (2, 2), (3, 3)] and e.body[0].dilation == (2, 2)
    assert e(torch.rand(1, 3, 20, 20)).shape == (1, 1, 20, 20)


def test_input_errors():
    net = small()
    with pytest.raises(ValueError, match="fixed_size"):
        net(batch(64))
    with pytest.raises(KeyError, match="fine_ref2"):
        net({k: v for k, v in batch(32).items() if k != "fine_ref2"})
    with pytest.raises(ValueError, match="not a multiple"):
        MSNet(fixed_size=40)


def test_pinned_output(cfg):
    torch.manual_seed(0)
    net = instantiate(cfg.net).eval()
    with torch.no_grad():
        out = net(batch(256, seed=3))
    assert out.shape == (1, 1, 256, 256)
    assert float(out.mean()) == pytest.approx(PINNED[0], abs=1e-5)
    assert float(out.std()) == pytest.approx(PINNED[1], abs=1e-5)


PINNED = (0.5304022431373596, 0.33776700496673584)  # recorded after the checks above passed
