"""ae_generic: design counts per block and per option, the fusion modes, one and two references, the masked L1 with
its identity term, and config errors."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.data.normalization import AffineNorm
from stf_bench.errors import ConfigError
from stf_bench.models.ae_generic import AEGeneric, LatentFusion
from stf_bench.models.blocks.masked import masked_l1
from tests.models.helpers import model_conf

CONF = model_conf("ae_generic")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build(cfg, **overrides) -> AEGeneric:
    torch.manual_seed(0)
    net = instantiate(OmegaConf.merge(cfg.net, overrides))
    net.norm = AffineNorm(offset=250.0, scale=60.0)
    return net


def batch(two_refs=False, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt"] + (["fine_ref2", "coarse_ref2"] if two_refs else [])
    out = {k: torch.rand(2, 1, size, size, generator=g) for k in keys}
    out["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return out


def test_config_declares_the_design(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple) == (
        "ae_generic", "reconstructed", "supervised", 1, 4)
    assert cfg.loss is None and cfg.optimizer.lr == 1e-4
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (16, 128, 200)


def test_parameter_counts_per_block_and_option(cfg):
    net = build(cfg)
    assert count(net) == cfg.params_target == 744_513
    assert [count(net.spatial_encoder), count(net.temporal_encoder), count(net.fusion), count(net.decoder)] == [
        286_432, 286_720, 32_896, 138_465]
    skips = build(cfg, skips=True)
    assert count(skips) == 790_593 and count(skips.decoder) == 138_465 + 9 * (64 * 64 + 32 * 32)
    assert count(build(cfg, fusion="add")) == 744_513 - 32_896
    assert count(build(cfg, fusion="gated")) == 744_513
    assert count(build(cfg, weighting="learned")) == 744_513 + 11_010
    # width and depth come from the config: one more level of 256 channels
    deeper = build(cfg, widths=[32, 64, 128, 256], size_multiple=8)
    assert count(deeper.spatial_encoder) == 286_432 + (9 * 128 * 256 + 256) + (9 * 256 * 256 + 256)


def test_pinned_forward_value(cfg):
    net = build(cfg).eval()
    with torch.no_grad():
        out = net(batch(size=32))
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(0.11088912, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.00126310, abs=1e-6)


def test_fusion_modes_follow_their_formulas():
    torch.manual_seed(0)
    h1, h2 = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(LatentFusion("add", 8, 0.2)(h1, h2), h1 + h2)
    gated = LatentFusion("gated", 8, 0.2)
    gate = torch.sigmoid(gated.gate(torch.cat([h1, h2], 1)))
    torch.testing.assert_close(gated(h1, h2), h1 + gate * h2)
    with torch.no_grad():
        gated.gate.bias.fill_(-1e4)  # a closed gate keeps the spatial code only
    torch.testing.assert_close(gated(h1, h2), h1)


def test_any_multiple_of_four_and_skips(cfg):
    for net in (build(cfg), build(cfg, skips=True, fusion="gated")):
        assert net(batch(size=36)).shape == (2, 1, 36, 36)


def test_two_references_are_combined_by_icw(cfg):
    net = build(cfg).eval()
    b = batch(two_refs=True)
    one = {k: v for k, v in b.items() if not k.endswith("2")}
    with torch.no_grad():
        same = dict(b, fine_ref2=b["fine_ref"], coarse_ref2=b["coarse_ref"])
        torch.testing.assert_close(net(same), net(one))  # identical references: the weights sum to one
        swapped = dict(b, fine_ref=b["fine_ref2"], coarse_ref=b["coarse_ref2"], fine_ref2=b["fine_ref"],
                       coarse_ref2=b["coarse_ref"])
        torch.testing.assert_close(net(swapped), net(b))
        # the second reference's coarse image equals C2: it did not change, so it takes (almost) all the weight
        ref2_unchanged = dict(b, coarse_ref2=b["coarse_tgt"])
        ref2_only = dict(one, fine_ref=b["fine_ref2"], coarse_ref=b["coarse_tgt"])
        both = net(ref2_unchanged)
        assert (both - net(ref2_only)).abs().max() < 0.1 * (both - net(one)).abs().max()
    net.norm = None
    with pytest.raises(RuntimeError, match="norm"):
        net(b)
    del b["coarse_ref2"]
    with pytest.raises(ValueError, match="coarse_ref2"):
        net(b)


def test_learned_weighting_trains_with_two_references(cfg):
    net = build(cfg, weighting="learned")
    net.norm = None  # the learned weighting needs no Kelvin quantity
    net.compute_loss(batch(two_refs=True), epoch=0)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.weighting.parameters())


def test_loss_is_masked_l1_plus_the_identity_term(cfg):
    net = build(cfg)
    b = batch()
    terms = net.compute_loss(b, epoch=0)
    assert set(terms) == {"loss", "l1", "identity"}
    pred = net(b)
    torch.testing.assert_close(terms["l1"], masked_l1(pred, b["fine_tgt"], b["valid_tgt"]))
    levels = net.spatial_encoder(b["fine_ref"])
    identity = (net.decode(levels, b["coarse_ref"], b["coarse_ref"]) - b["fine_ref"]).abs().mean()  # all pixels
    torch.testing.assert_close(terms["identity"], identity)
    torch.testing.assert_close(terms["loss"], terms["l1"] + 0.1 * identity)
    # unobserved target pixels add nothing, whatever they hold
    cloudy = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], torch.tensor(9.0)))
    torch.testing.assert_close(net.compute_loss(cloudy, 0)["loss"], terms["loss"])
    # a given prediction is reused for the first term
    torch.testing.assert_close(net.compute_loss(b, 0, pred=b["fine_tgt"])["l1"], torch.tensor(0.0))
    no_identity = build(cfg, identity_weight=0.0).compute_loss(b, 0)
    assert set(no_identity) == {"loss", "l1"} and torch.equal(no_identity["loss"].detach(), no_identity["l1"])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.net.fusion='sum'"):
        AEGeneric(fusion="sum")
    with pytest.raises(ConfigError, match="model.net.weighting"):
        AEGeneric(weighting="mean")
    with pytest.raises(ConfigError, match="model.size_multiple=4 .* multiple of 8"):
        AEGeneric(widths=[32, 64, 128, 256], size_multiple=4)
    with pytest.raises(ConfigError, match="convs_per_level=0"):
        AEGeneric(convs_per_level=0)
