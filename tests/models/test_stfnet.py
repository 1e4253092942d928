"""StfNet: stream counts, the per-image weight and its hard switch, the output formula and the masked loss with its
temporal-consistency term."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.models.helpers import model_conf

CONF = model_conf("stfnet")


def build(cfg, seed=0, **overrides):
    torch.manual_seed(seed)
    return instantiate(OmegaConf.merge(cfg.net, overrides))


def _batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt", "fine_ref2", "coarse_ref2"]
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in keys}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_and_parameter_counts(cfg):
    net = build(cfg)
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.size_multiple, cfg.net.tau, cfg.net.lam) == (
        "stfnet", "re-implementation", 2, 1, 0.1, 1.0)
    count = [sum(p.numel() for p in s.parameters()) for s in (net.stream_12, net.stream_23)]
    assert count == [18_433, 18_433] and sum(count) == cfg.params_target == 36_866
    assert "min_refs" not in cfg  # both sides are needed


def test_weight_is_per_image_with_an_optional_hard_switch(cfg):
    soft, hard = build(cfg, tau=None), build(cfg)
    c2 = torch.zeros(2, 1, 8, 8)
    # image 0: m12 = 0.02, m23 = 0.06 -> w = 0.75; image 1: m12 = 0.3, m23 = 0.1 (a 0.2 gap > tau) -> hard w = 0
    c1 = torch.cat([torch.full((1, 1, 8, 8), 0.02), torch.full((1, 1, 8, 8), -0.3)])
    c3 = torch.cat([torch.full((1, 1, 8, 8), -0.06), torch.full((1, 1, 8, 8), 0.1)])
    batch = {"coarse_ref": c1, "coarse_tgt": c2, "coarse_ref2": c3}
    torch.testing.assert_close(soft.weight(batch).flatten(), torch.tensor([0.75, 0.25]), atol=1e-5, rtol=0)
    torch.testing.assert_close(hard.weight(batch).flatten(), torch.tensor([0.75, 0.0]), atol=1e-5, rtol=0)
    flipped = {"coarse_ref": c3, "coarse_tgt": c2, "coarse_ref2": c1}
    torch.testing.assert_close(hard.weight(flipped).flatten(), torch.tensor([0.25, 1.0]), atol=1e-5, rtol=0)
    same = {"coarse_ref": c2, "coarse_tgt": c2, "coarse_ref2": c2}  # no change on either side: equal weights
    torch.testing.assert_close(soft.weight(same).flatten(), torch.tensor([0.5, 0.5]))


def test_output_combines_the_two_difference_predictions(cfg):
    net = build(cfg).eval()
    batch = _batch()
    with torch.no_grad():
        d12, d23 = net.differences(batch)
        w = net.weight(batch)
        out = net(batch)
    assert w.shape == (2, 1, 1, 1)
    expected = w * (batch["fine_ref"] + d12) + (1 - w) * (batch["fine_ref2"] - d23)
    torch.testing.assert_close(out, expected)
    # stream I sees only the t1 side, stream II only the t3 side
    with torch.no_grad():
        moved = dict(batch, fine_ref2=batch["fine_ref2"] + 1.0, coarse_ref2=batch["coarse_ref2"] - 1.0)
        torch.testing.assert_close(net.differences(moved)[0], d12)


def test_loss_masks_the_target_terms_only(cfg):
    net = build(cfg)
    batch = _batch()
    terms = net.compute_loss(batch, 0)
    assert set(terms) == {"loss", "d12", "d23", "consistency"}
    torch.testing.assert_close(terms["loss"], terms["d12"] + terms["d23"] + terms["consistency"])
    for fill in (torch.nan, 5.0):
        changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], fill))
        torch.testing.assert_close(net.compute_loss(changed, 0)["loss"], terms["loss"])
    d12, d23 = net.differences(batch)
    f1, f3 = batch["fine_ref"], batch["fine_ref2"]
    # the consistency term is between references: every pixel counts
    torch.testing.assert_close(terms["consistency"], ((d12 + d23 - (f3 - f1)) ** 2).mean().detach())
    v = batch["valid_tgt"]
    torch.testing.assert_close(terms["d12"], ((d12 - (batch["fine_tgt"] - f1))[v] ** 2).mean().detach())
    lam = build(cfg, lam=0.0).compute_loss(batch, 0)
    torch.testing.assert_close(lam["loss"], terms["d12"] + terms["d23"])


def test_pinned_forward(cfg):
    net = build(cfg, seed=0).eval()
    batch = _batch(seed=7)
    with torch.no_grad():
        out = net(batch)
    assert out.mean().item() == pytest.approx(PINNED_MEAN, abs=1e-5)
    assert out.std().item() == pytest.approx(PINNED_STD, abs=1e-5)


PINNED_MEAN, PINNED_STD = 0.5332872, 0.2070182  # recorded after the formula checks above
