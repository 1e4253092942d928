"""STF-Trans (reconstructed): design counts, pinned output, stream residuals, merge, padding, loss terms."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.stftrans import STFTrans

YAML = Path(__file__).parents[2] / "conf" / "model" / "stftrans.yaml"
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt")
TINY = {"dims": (8, 16, 32), "heads": (1, 1, 2), "window": 2}  # multiple 4 * 4 * 2 = 32


def batch(size, seed=0, b=2):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 1, size, size, generator=g) for k in KEYS}


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def tiny(**kw):
    torch.manual_seed(0)
    return STFTrans(**{**TINY, **kw})


def test_design_counts():
    net = instantiate(OmegaConf.load(YAML).net)
    assert (count(net.temporal), count(net.sensor), count(net.merge)) == (3_021_289, 3_020_265, 737)
    assert count(net) == 6_042_291 and net.multiple == 128


def test_pinned_output():
    torch.manual_seed(0)
    net = instantiate(OmegaConf.load(YAML).net).eval()
    with torch.no_grad():
        y = net(batch(128))
    assert y.shape == (2, 1, 128, 128)
    assert y.mean().item() == pytest.approx(0.4835912, abs=1e-5)
    assert y.std().item() == pytest.approx(0.4480971, abs=1e-5)


def test_streams_are_residual_on_f1_and_c2_and_the_merge_lies_between():
    net = tiny().eval()
    for stream in (net.temporal, net.sensor):
        torch.nn.init.zeros_(stream.head.weight)
        torch.nn.init.zeros_(stream.head.bias)
    data = batch(32)
    with torch.no_grad():
        out, a, b = net.streams(data)
    torch.testing.assert_close(a, data["fine_ref"])
    torch.testing.assert_close(b, data["coarse_tgt"])
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    assert ((out >= lo - 1e-6) & (out <= hi + 1e-6)).all()
    assert ((out - lo).abs() > 1e-4).any()  # a weight strictly inside (0, 1), not a hard switch


def test_odd_sides_are_padded_inside_and_cropped():
    net = tiny().eval()
    data = batch(20)
    padded = {k: torch.nn.functional.pad(v, (0, 12, 0, 12), mode="replicate") for k, v in data.items()}
    with torch.no_grad():
        torch.testing.assert_close(net(data), net(padded)[..., :20, :20], rtol=0, atol=1e-6)
        assert net(batch(64)).shape == (2, 1, 64, 64)


def test_loss_is_l1_plus_half_the_stream_terms_on_observed_pixels():
    net = tiny().eval()
    data = batch(32)
    valid = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    valid[..., :8, :] = False
    with torch.no_grad():
        out, a, b = net.streams(data)
    target = torch.rand(2, 1, 32, 32)
    data |= {"fine_tgt": target, "valid_tgt": valid}
    terms = net.compute_loss(data, 0)

    def l1(x):
        return (x - target).abs()[valid].mean()

    assert terms["l1"].item() == pytest.approx(l1(out).item(), abs=1e-6)
    assert terms["loss"].item() == pytest.approx((l1(out) + 0.5 * (l1(a) + l1(b))).item(), abs=1e-6)
    data["fine_tgt"] = torch.where(valid, target, target + 100.0)  # masked rows never count
    assert net.compute_loss(data, 0)["loss"].item() == pytest.approx(terms["loss"].item(), abs=1e-5)
