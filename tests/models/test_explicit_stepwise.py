"""explicit_stepwise: S / N / T at the design counts, the stage schedule scaled to max_epochs, each network trained
in its own stage only (frozen after it), the masked terms, the coarse-delta start of T, config errors."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool
from stf_bench.models.explicit_stepwise import ExplicitStepwise
from stf_bench.models.param_table import inference_parameters
from tests.models.helpers import model_conf

CONF = model_conf("explicit_stepwise")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def net(cfg) -> ExplicitStepwise:
    torch.manual_seed(0)
    return instantiate(cfg.net)


def batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: 0.3 + 0.4 * torch.rand(2, 1, size, size, generator=g)
           for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    out["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return out


def test_design_counts(cfg, net):
    assert count(net.spatial) == 298_632 and count(net.spatial.duals) == 1_220
    assert count(net.sensor) == 82_913 and count(net.temporal) == 593_793
    assert count(net.discriminator) == 2_765_505
    assert inference_parameters(net) == cfg.params_target == 975_338


def test_stage_schedule_scales_with_max_epochs():
    assert ExplicitStepwise(max_epochs=350).stage_starts == (0, 100, 150)  # the published 100 / 50 / 200
    assert [ExplicitStepwise(max_epochs=7).stage(e) for e in range(7)] == ["S", "S", "N", "T", "T", "T", "T"]
    assert [ExplicitStepwise(max_epochs=3).stage(e) for e in range(3)] == ["S", "N", "T"]
    short = ExplicitStepwise(max_epochs=1)
    assert short.stage(0) == "joint" and short.adversarial_at(0) and short.stage_starts == (0,)
    assert [ExplicitStepwise(max_epochs=350).adversarial_at(e) for e in (0, 120, 150)] == [False, False, True]


def grads(net, b, epoch) -> set[str]:
    net.zero_grad(set_to_none=True)
    net.compute_loss(b, epoch)["loss"].backward()
    return {n.split(".")[0] for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_each_network_trains_in_its_stage_only(net):
    b = batch()
    assert grads(net, b, 0) == {"spatial"}
    assert grads(net, b, 100) == {"sensor"}  # S runs without gradients: frozen
    assert grads(net, b, 200) == {"temporal"}  # S and N frozen
    with torch.no_grad():
        net.temporal[-1].weight.normal_(std=0.01)  # past the zero start, so that the layers below T's head learn
    short = ExplicitStepwise(max_epochs=1)
    short.load_state_dict(net.state_dict())
    parts = short.compute_loss(b, 0)
    assert {"s_l1", "s_dual", "n_mse", "t_l1"} <= set(parts)  # a debug run passes every stage
    assert grads(short, b, 0) == {"spatial", "sensor", "temporal"}


def test_spatial_loss_and_terms_masked_by_valid_target(net):
    b = batch()
    ys = net.spatial(coarse_pool(b["fine_ref"], 16))
    assert [y.shape[-1] for y in ys] == [2, 4, 8, 16, 32]
    dual = sum(torch.nn.functional.l1_loss(d(ys[k + 1]), ys[k]) for k, d in enumerate(net.spatial.duals))
    expected = torch.nn.functional.l1_loss(ys[-1], b["fine_ref"]) + 0.1 * dual
    assert torch.allclose(net.compute_loss(b, 0)["loss"], expected, atol=1e-6)
    changed = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], 50.0))  # unobserved pixels changed
    for epoch in (100, 200):
        assert torch.allclose(net.compute_loss(changed, epoch)["loss"], net.compute_loss(b, epoch)["loss"])


def test_temporal_starts_at_the_corrected_coarse_delta_and_d_sees_c2(net):
    b = batch()
    with torch.no_grad():
        c1, c2 = net.corrected_coarse(b["coarse_ref"]), net.corrected_coarse(b["coarse_tgt"])
        assert torch.allclose(net(b), b["fine_ref"] + c2 - c1, atol=1e-6)
        assert torch.equal(net.d_input(b, b["fine_tgt"])[:, 1:], c2)
        assert net.discriminate(net.d_input(b, b["fine_tgt"])).shape == (2, 1, 7, 7)


def test_pinned_forward_value(net):
    with torch.no_grad():
        net.temporal[-1].weight.normal_(std=0.01, generator=torch.Generator().manual_seed(1))
        out = net.eval()(batch(64))
    assert out.shape == (2, 1, 64, 64)
    assert float(out.mean()) == pytest.approx(PINNED[0], abs=1e-5)
    assert float(out.std()) == pytest.approx(PINNED[1], abs=1e-5)


PINNED = (0.519675, 0.116532)  # recorded from this implementation (random weights, T head at std 0.01)


def test_config_errors():
    with pytest.raises(ConfigError, match="power of 2"):
        ExplicitStepwise(max_epochs=350, coarse_factor=12)
    with pytest.raises(ConfigError, match="max_epochs=0"):
        ExplicitStepwise(max_epochs=0)
    with pytest.raises(ConfigError, match="export_corrected_coarse"):
        ExplicitStepwise(max_epochs=350, export_corrected_coarse=True)
