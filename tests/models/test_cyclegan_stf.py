"""cyclegan_stf: ResNet-9 generators and InstanceNorm PatchGANs at the design counts, the cycle/identity terms, the
snapshots, the candidate selection, the Haar detail fusion, the cycle module's pool and registry entry."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.data.normalization import AffineNorm
from stf_bench.errors import ConfigError
from stf_bench.models.cyclegan_stf import (CycleGANSTF, centred_rmse, haar, inverse_haar, linear_decay, nearer_is_first,
                                           resnet_generator, wavelet_enhance)
from stf_bench.models.param_table import inference_parameters
from stf_bench.training.cycle import CycleAdversarialModule, ImagePool
from stf_bench.training.registry import lightning_module_class
from tests.models.helpers import model_conf

CONF = model_conf("cyclegan_stf")
SMALL = {"width": 8, "n_blocks": 1, "d_widths": [8, 16, 16, 16]}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def make(**overrides):
    cfg = OmegaConf.merge({"dataset": {"coarse_block": 33}}, {"model": OmegaConf.load(CONF)},
                          {"model": {"net": overrides}}).model
    torch.manual_seed(0)
    net = instantiate(cfg.net)
    net.norm = AffineNorm(offset=250.0, scale=60.0)
    return cfg, net


def batch(size=64, seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    out = {k: 0.3 + 0.4 * torch.rand(n, 1, size, size, generator=g)
           for k in ("fine_ref", "fine_ref2", "coarse_tgt", "fine_tgt")}
    out["valid_tgt"] = torch.ones(n, 1, size, size, dtype=torch.bool)
    out["meta"] = {"dates": ["2020-06-15,2020-06-01,2020-07-15", "2020-06-15,2020-05-01,2020-06-20"][:n]}
    return out


def test_design_counts():
    cfg, net = make()
    assert count(resnet_generator()) == count(net.g_ab) == count(net.g_ba) == 11_365_633
    assert count(net.discriminator["a"]) == count(net.discriminator["b"]) == 2_762_689
    assert inference_parameters(net) == cfg.params_target == 2 * 11_365_633  # both generators make candidates


def test_haar_is_orthonormal_and_the_detail_rule_keeps_the_larger_coefficient():
    x = torch.rand(1, 1, 8, 8)
    assert torch.allclose(inverse_haar(*haar(x)), x, atol=1e-6)
    flat = torch.full((1, 1, 8, 8), 0.5)
    checker = 0.3 + 0.1 * (torch.arange(8)[:, None] + torch.arange(8)[None]).remainder(2).float() - 0.05
    # X has no detail: E keeps X's low band (0.5) and takes the reference's detail (+-0.05)
    assert torch.allclose(wavelet_enhance(flat, checker[None, None]), 0.5 + checker[None, None] - 0.3, atol=1e-6)
    assert torch.allclose(wavelet_enhance(checker[None, None], flat), checker[None, None], atol=1e-6)


def test_selection_ignores_a_sensor_offset():
    cfg, net = make(**SMALL, coarse_factor=8)
    c2 = torch.rand(1, 1, 32, 32)
    cands = torch.stack([torch.rand(1, 1, 32, 32), c2 + 3.0, torch.rand(1, 1, 32, 32)])
    assert torch.equal(net.select(cands, c2), c2 + 3.0)
    assert float(centred_rmse(c2 + 3.0, c2).max()) < 1e-6


def test_nearer_reference_from_the_dates():
    assert nearer_is_first(batch()["meta"], 2).tolist() == [True, False]
    with pytest.raises(ValueError, match="meta\\['dates'\\]"):
        nearer_is_first({}, 2)


def test_cycle_and_identity_terms_and_unpaired_domains():
    cfg, net = make(**SMALL)
    b = batch(32)
    real_a, real_b = net.domains(b)
    assert torch.equal(real_b[0], b["fine_ref2"][1])  # B is shifted by one item: unpaired with A
    parts, x = net.cycle_terms(b)
    l1 = torch.nn.functional.l1_loss
    cycle = l1(net.g_ba(x["fake_b"]), real_a) + l1(net.g_ab(x["fake_a"]), real_b)
    identity = l1(net.g_ab(real_b), real_b) + l1(net.g_ba(real_a), real_a)
    assert torch.allclose(parts["loss"], 10 * cycle + 5 * identity, atol=1e-5)
    b["fine_tgt"] = b["fine_tgt"] + 100.0  # the CycleGAN never reads F2
    assert torch.allclose(net.compute_loss(b, 0)["loss"], parts["loss"], atol=1e-5)


def test_snapshots_schedule_candidates_and_checkpoint_round_trip():
    cfg, net = make(**SMALL)
    assert [e for e in range(200) if net.snapshot_due(e)] == list(range(19, 180, 20))  # 9 + the current generators
    net.take_snapshot()
    net.take_snapshot()
    assert not any(p.requires_grad for p in net.snapshots.parameters())
    assert inference_parameters(net) == 2 * count(net.g_ab)  # frozen snapshots are not model parameters
    b = batch(32)
    assert net.candidates(b["fine_ref"], b["fine_ref2"]).shape == (2 + 2 * 3, 2, 1, 32, 32)
    fresh = make(**SMALL)[1]
    assert fresh.load_state_dict(net.state_dict(), strict=True) is not None and len(fresh.snapshots) == 2
    with torch.no_grad():
        assert torch.equal(fresh.eval()(b), net.eval()(b))


def test_pinned_forward_value():
    cfg, net = make(**SMALL)
    with torch.no_grad():
        out = net.eval()(batch())
    assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all()
    assert float(out.mean()) == pytest.approx(PINNED[0], abs=1e-5)
    assert float(out.std()) == pytest.approx(PINNED[1], abs=1e-5)


PINNED = (0.501061, 0.127404)  # recorded from this implementation (small widths, random weights)


def test_image_pool():
    torch.manual_seed(0)
    pool = ImagePool(2)
    first = torch.arange(2.0).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: passed through and kept
    history, passed = 0, 0
    for k in range(20):
        stored = {float(v) for v in pool.images}
        out = float(pool.query(torch.full((1, 1, 1, 1), 10.0 + k)))
        assert out == 10.0 + k or out in stored  # the new image, or a stored one it replaces
        history += out in stored
        passed += out == 10.0 + k
        assert len(pool.images) == 2
    assert history > 0 and passed > 0  # about half each
    assert torch.equal(ImagePool(0).query(first), first)


def test_schedule_and_registry_and_config_errors():
    assert [linear_decay(e, 100, 200) for e in (0, 98, 99, 100, 199)] == pytest.approx(
        [1.0, 1.0, 1.0, 1.0 - 1 / 101, 1.0 - 100 / 101])
    assert lightning_module_class("adversarial", {"mode": "cycle"}) is CycleAdversarialModule
    with pytest.raises(ConfigError, match="adversarial.mode='pix2pix'"):
        lightning_module_class("adversarial", {"mode": "pix2pix"})
    with pytest.raises(ConfigError, match="fit_per_scene"):
        CycleGANSTF(max_epochs=200, fsdaf=None, fit_per_scene=True)
