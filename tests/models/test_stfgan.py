"""STFGAN: exact 1-band counts of G and D, the internal [-1, 1] range and Tanh bound, the inputs it reads, the
unconditional critic, the masked MSE and the config errors."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.ranges import SYMMETRIC
from stf_bench.models.stfgan import STFGAN
from tests.models.helpers import model_conf, n_params

CONF = model_conf("stfgan")
INPUTS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")
MEAN, STD = 0.5235801, 0.0435712


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.net)


def _batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in (*INPUTS, "fine_tgt")}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_declares_the_contract(cfg, model):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple) == (
        "stfgan", "re-implementation", "adversarial", 2, 4)
    assert tuple(cfg.inputs) == INPUTS
    assert dict(cfg.adversarial) == {"regenerate_for_g": True, "warmup_epochs": 1, "wgan_clip": 0.01}
    assert cfg.optimizer._target_ == cfg.d_optimizer._target_ == "torch.optim.RMSprop"
    assert cfg.optimizer.lr == cfg.d_optimizer.lr == 1e-4
    assert (cfg.scheduler.step_size, cfg.scheduler.gamma) == (250, 0.1)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (16, 256, 500)
    assert (model.adv_weight, model.gan_mode, model.output_activation) == (1e-3, "wgan_clip", "tanh")
    assert n_params(model.generator) == cfg.params_target == 2_184_641


def test_parameter_counts_per_part(model):
    g = model.generator
    assert (n_params(g.coarse), n_params(g.upsample), n_params(g.fine), n_params(g.fusion)) == (
        1_238_464, 295_424, 640_384, 10_369)
    assert [n_params(b) for b in g.coarse.blocks] == [74_112] * 16 and len(g.fine.blocks) == 8
    assert n_params(model.discriminator) == 5_214_273


def test_forward_value_is_pinned(model):
    """Recorded after the third-party-code comparison (max abs diff 0.0, see the module docstring)."""
    model.eval()
    with torch.no_grad():
        out = model({k: v for k, v in _batch(64).items() if k in INPUTS})
    model.train()
    assert out.shape == (2, 1, 64, 64)
    assert out.mean().item() == pytest.approx(MEAN, abs=1e-5)
    assert out.std().item() == pytest.approx(STD, abs=1e-5)


def test_internal_range_and_tanh_bound(cfg):
    """The output is Tanh on [-1, 1] mapped back: bounded 12.5 % of the span beyond [0, 1]; `none` unbounds it."""
    torch.manual_seed(0)
    bounded = instantiate(cfg.net).eval()
    torch.nn.init.constant_(bounded.generator.fusion.bias, 50.0)  # saturate the Tanh
    unbounded = instantiate(OmegaConf.merge(cfg.net, {"output_activation": "none"})).eval()
    unbounded.load_state_dict(bounded.state_dict())
    batch = _batch(32)
    with torch.no_grad():
        torch.testing.assert_close(bounded(batch), torch.full((2, 1, 32, 32), 1.125))
        assert unbounded(batch).min() > 20
    assert SYMMETRIC.to_internal(torch.tensor([0.0, 1.0])).tolist() == pytest.approx([-0.8, 0.8])


def test_coarse_images_enter_at_a_quarter_resolution(model):
    """Only the 4x4 block means of C1, C2, C3 matter: detail inside a block leaves the prediction unchanged."""
    batch = _batch(32)
    blocky = {k: (torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(v, 4), scale_factor=4)
                  if k.startswith("coarse") else v) for k, v in batch.items()}
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(blocky), model(batch))
        changed = dict(batch, coarse_tgt=batch["coarse_tgt"] + 0.1)
        assert not torch.allclose(model(changed), model(batch))
        model.train()
    with pytest.raises(ValueError, match="multiples of 4"):
        model(_batch(30))


def test_critic_is_unconditional_on_the_internal_range(model):
    batch = _batch(32)
    x = model.d_input(batch, batch["fine_tgt"])
    torch.testing.assert_close(x, 1.6 * batch["fine_tgt"] - 0.8)
    assert model.discriminate(x).shape == (2, 1)


def test_mse_is_masked_and_on_the_internal_range(model):
    batch = _batch()
    pred = batch["fine_tgt"] + 0.25
    terms = model.compute_loss(batch, 0, pred=pred)
    assert set(terms) == {"loss", "mse"}
    assert terms["loss"].item() == pytest.approx((1.6 * 0.25) ** 2, abs=1e-6)
    changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], 9.0))
    torch.testing.assert_close(model.compute_loss(changed, 0, pred=pred)["loss"], terms["loss"])


@pytest.mark.parametrize("option", [{"stages": 2}, {"output_activation": "relu"}, {"gan_mode": "bce"},
                                    {"coarse_pool": 8}])
def test_bad_options_are_config_errors(option):
    with pytest.raises(ConfigError, match=next(iter(option))):
        STFGAN(**option)
