"""STFDCNN: stage counts, LSR, the two fusion passes (hpm in Kelvin, additive, ICW, one reference) and the
independent, masked stage losses."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.data.normalization import AffineNorm
from stf_bench.errors import ConfigError
from stf_bench.models.stfdcnn import STFDCNN, lsr, masked_lsr, srcnn
from tests.models.helpers import model_conf, n_trainable

CONF = model_conf("stfdcnn")
NORM = AffineNorm(offset=250.0, scale=60.0)


def build(cfg, seed=0, **overrides):
    torch.manual_seed(seed)
    net = instantiate(OmegaConf.merge(cfg.net, overrides))
    net.norm = NORM
    return net


def identity_stages(net):
    """Zero the last conv of both stages: each network is then its global residual, the identity."""
    for stage in (net.nlm, net.sr):
        last = stage.body[-1]
        torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    return net


def _batch(two_refs=True, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt"] + (["fine_ref2", "coarse_ref2"] if two_refs else [])
    batch = {k: 0.2 + 0.6 * torch.rand(2, 1, size, size, generator=g) for k in keys}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_and_parameter_counts(cfg):
    net = build(cfg)
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.min_refs, cfg.size_multiple) == ("stfdcnn", "re-implementation", 2, 1, 8)
    assert n_trainable(net.nlm) == n_trainable(net.sr) == 57_281 and n_trainable(net) == cfg.params_target == 114_562
    assert net.nlm is not net.sr and net.nlm.body[0].weight.data_ptr() != net.sr.body[0].weight.data_ptr()
    # SGD at the re-implementation's rates: NLM 1e-2 (the optimizer's own), SR 1e-1 (its parameter group)
    assert cfg.optimizer.lr == 1e-2 and list(cfg.optimizer_groups) == [{"prefix": "sr.", "lr": 0.1}]
    assert all(n.startswith(("nlm.", "sr.")) for n, _ in net.named_parameters())
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (16, 256, 1000)


def test_lsr_and_its_masked_form():
    x = torch.rand(1, 1, 32, 32)
    assert torch.allclose(lsr(torch.full_like(x, 0.7), 8), torch.full_like(x, 0.7))
    blocks = torch.nn.functional.avg_pool2d(x, 8)
    assert torch.allclose(torch.nn.functional.avg_pool2d(lsr(x, 8), 8), blocks, atol=0.05)  # a smooth, not exact, U
    valid = torch.ones_like(x, dtype=torch.bool)
    full, defined = masked_lsr(x, valid, 8)
    assert torch.allclose(full, lsr(x, 8)) and defined.all()
    valid[..., :8, :8] = False  # one block entirely unobserved, holding NaN
    valid[..., 8:10, 8:16] = False  # a block partly unobserved
    noisy = torch.where(valid, x, torch.nan)
    out, defined = masked_lsr(noisy, valid, 8)
    assert torch.isfinite(out).all()
    assert not defined[..., :4, :4].any() and defined[..., 20:, 20:].all()  # near the empty block: undefined
    part = x[..., 10:16, 8:16].mean()
    assert torch.isclose(out[..., 12, 12], part, atol=0.1) and defined[..., 12, 12]


@pytest.mark.parametrize("two_refs", (False, True))
def test_identity_stages_reduce_to_hpm_of_the_reference(cfg, two_refs):
    """With identity networks the two passes telescope: F2 = F1_K C2_K / C1_K (hpm) or F1 + C2 - C1 (additive)."""
    batch = _batch(two_refs=False)
    if two_refs:  # identical references: the ICW weights sum to one
        batch.update(fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
    with torch.no_grad():
        hpm = identity_stages(build(cfg))(batch)
        additive = identity_stages(build(cfg, fusion="additive"))(batch)
    f1, c1, c2 = (NORM.to_kelvin(batch[k]) for k in ("fine_ref", "coarse_ref", "coarse_tgt"))
    torch.testing.assert_close(hpm, NORM.from_kelvin(f1 * c2 / c1), atol=1e-5, rtol=0)
    torch.testing.assert_close(additive, batch["fine_ref"] + batch["coarse_tgt"] - batch["coarse_ref"],
                               atol=1e-5, rtol=0)
    assert not torch.allclose(hpm, additive, atol=1e-3)  # hpm is not the additive form in normalized units


def test_icw_trusts_the_reference_whose_coarse_image_did_not_change(cfg):
    net = identity_stages(build(cfg, fusion="additive"))
    batch = _batch()
    batch["coarse_ref2"] = batch["coarse_tgt"].clone()  # no change between t2 and t3
    batch["coarse_ref"] = batch["coarse_tgt"] + 0.3  # an 18 K change between t1 and t2
    batch["fine_ref"] = batch["fine_ref"] + 0.3  # so that the LSR images (stage 2's ICW) differ as well
    with torch.no_grad():
        out, via_t1 = net(batch), net({k: v for k, v in batch.items() if not k.endswith("2")})
    # identity stages: the t3 branch alone predicts F3; the t1 branch is far from it and gets almost no weight
    torch.testing.assert_close(out, batch["fine_ref2"], atol=1e-2, rtol=0)
    assert (via_t1 - batch["fine_ref2"]).abs().max() > 0.3
    swapped = dict(batch, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"],
                   fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
    with torch.no_grad():
        torch.testing.assert_close(net(swapped), out)


def test_one_reference_path_reads_only_t1(cfg):
    net = build(cfg).eval()
    batch = _batch()
    one = {k: v for k, v in batch.items() if not k.endswith("2")}
    ref2_only = dict(one, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"])
    with torch.no_grad():
        both, first, second = net(batch), net(one), net(ref2_only)
    assert both.shape == first.shape == (2, 1, 32, 32)
    assert not torch.allclose(both, first) and not torch.allclose(both, second)
    with pytest.raises(ValueError, match="coarse_ref2"):
        net({k: v for k, v in batch.items() if k != "coarse_ref2"})


def test_kelvin_quantities_need_the_normalization(cfg):
    net = build(cfg)
    net.norm = None
    with pytest.raises(RuntimeError, match="norm"):
        net(_batch())
    assert torch.isfinite(net.compute_loss(_batch(), 0)["loss"])  # the stage losses are in normalized units


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.net.fusion='ratio'"):
        STFDCNN(srcnn, fusion="ratio")
    with pytest.raises(ConfigError, match="model.net.lsr_factor=1"):
        STFDCNN(srcnn, lsr_factor=1)


def test_stage_losses_are_independent_and_masked(cfg):
    net = build(cfg)
    batch = _batch()
    terms = net.compute_loss(batch, 0)
    assert set(terms) == {"loss", "nlm", "sr"}
    torch.testing.assert_close(terms["loss"], terms["nlm"] + terms["sr"])
    for fill in (torch.nan, 5.0):  # unobserved target pixels never count
        changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], fill))
        torch.testing.assert_close(net.compute_loss(changed, 0)["loss"], terms["loss"])
    with torch.no_grad():  # each stage sees true inputs: changing one network leaves the other's term unchanged
        net.nlm.body[0].weight.add_(0.1)
    after = net.compute_loss(batch, 0)
    assert after["sr"] == terms["sr"] and after["nlm"] != terms["nlm"]
    net.zero_grad()
    net.compute_loss(batch, 0)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_stage_losses_of_exact_stages_are_zero(cfg):
    """Targets are LSR(F) for NLM and F for SR: with C = LSR(F) and identity stages the NLM term vanishes."""
    net = identity_stages(build(cfg))
    batch = _batch()
    for role in ("ref", "ref2"):
        batch[f"coarse_{role}"] = lsr(batch[f"fine_{role}"], 8)
    batch["coarse_tgt"] = masked_lsr(batch["fine_tgt"], batch["valid_tgt"], 8)[0]
    terms = net.compute_loss(batch, 0)
    assert terms["nlm"].item() == pytest.approx(0.0, abs=1e-12) and terms["sr"].item() > 1e-3


def test_pinned_forward(cfg):
    net = build(cfg, seed=0).eval()
    g = torch.Generator().manual_seed(7)
    batch = {k: torch.rand(1, 1, 32, 32, generator=g) for k in ("fine_ref", "coarse_ref", "coarse_tgt",
                                                                   "fine_ref2", "coarse_ref2")}
    with torch.no_grad():
        out = net(batch)
    assert out.mean().item() == pytest.approx(PINNED_MEAN, abs=1e-5)
    assert out.std().item() == pytest.approx(PINNED_STD, abs=1e-5)


def test_srcnn_shape():
    net = srcnn()
    assert [tuple(m.weight.shape) for m in net.body if isinstance(m, torch.nn.Conv2d)] == [
        (64, 1, 9, 9), (32, 64, 5, 5), (1, 32, 5, 5)]
    assert isinstance(STFDCNN(srcnn).nlm, type(net))


PINNED_MEAN, PINNED_STD = 0.5065960, 0.4098064  # recorded after the identity-stage checks above
