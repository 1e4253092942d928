"""cnn_generic: design counts per block, width/depth/fusion options, residual, one and two references."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.data.normalization import AffineNorm
from stf_bench.errors import ConfigError, user_error
from tests.models.helpers import model_conf, n_params

CONF = model_conf("cnn_generic")


def _cfg(**net):
    return OmegaConf.merge({"model": OmegaConf.load(CONF)}, {"model": {"net": net}}).model


def _model(seed=0, **net):
    torch.manual_seed(seed)
    model = instantiate(_cfg(**net).net)
    model.norm = AffineNorm(offset=250.0, scale=60.0)
    return model


def _config_error(**net) -> str:
    """The ConfigError message the entry points show (instantiate wraps it in an InstantiationException)."""
    with pytest.raises(Exception) as info:
        _model(**net)
    error = user_error(info.value)
    assert isinstance(error, ConfigError), info.value
    return str(error)


def _batch(two_refs=False, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt"] + (["fine_ref2", "coarse_ref2"] if two_refs else [])
    return {k: torch.rand(2, 1, size, size, generator=g) for k in keys}


def test_config_declares_the_contract():
    cfg = _cfg()
    assert (cfg.id, cfg.label, cfg.family, cfg.n_refs, cfg.min_refs, cfg.size_multiple) == (
        "cnn_generic", "reconstructed", "CNN", 1, 1, 4)
    assert cfg.params_target == 383_553 and list(cfg.loss.terms) == [{"name": "mse", "weight": 1.0}]
    assert (cfg.optimizer.lr, cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (1e-4, 16, 128, 200)
    assert (cfg.net.fusion, cfg.net.residual, cfg.net.weighting) == ("concat", False, "icw")


def test_parameter_counts_per_block():
    model = _model()
    assert n_params(model.spatial) == 92_672
    assert n_params(model.temporal) == 92_960
    assert n_params(model.fuse) == 32_896
    assert n_params(model.reconstruct) == 165_025
    assert n_params(model) == 383_553
    assert n_params(_model(fusion="add")) == 383_553 - 32_896  # the sum has no layer
    assert n_params(_model(weighting="learned")) == 383_553 + 11_010


def test_widths_set_width_and_depth():
    model = _model(widths=[16, 32, 64, 128], size_multiple=8)
    assert len([m for m in model.spatial if isinstance(m, torch.nn.Conv2d)]) == 4
    assert model(_batch(size=32)).shape == (2, 1, 32, 32)
    assert _model(widths=[8, 16]).reconstruct[0].out_channels == 8
    # three halvings but size_multiple 4
    assert "model.size_multiple must be a multiple of 8, not 4" in _config_error(widths=[16, 32, 64, 128])


@pytest.mark.parametrize("key,value", [("fusion", "sum"), ("weighting", "mean"), ("widths", [])])
def test_bad_options_are_config_errors(key, value):
    assert f"model.net.{key}" in _config_error(**{key: value})


def test_forward_shapes_and_pinned_value():
    model = _model()
    for two_refs in (False, True):
        for size in (32, 64):
            assert model(_batch(two_refs, size)).shape == (2, 1, size, size)
    with torch.no_grad():
        out = model(_batch(seed=5))
    assert float(out.mean()) == pytest.approx(0.1880186, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.0012204, abs=1e-6)


def test_residual_adds_the_delta_baseline():
    batch = _batch()
    plain, residual = _model(seed=1), _model(seed=1, residual=True)
    baseline = batch["fine_ref"] + batch["coarse_tgt"] - batch["coarse_ref"]
    torch.testing.assert_close(residual(batch), plain(batch) + baseline)


@pytest.mark.parametrize("weighting", ("icw", "learned"))
def test_two_references_share_weights_and_combine(weighting):
    model = _model(weighting=weighting)
    batch = _batch(two_refs=True)
    one = {k: v for k, v in batch.items() if not k.endswith("2")}
    other = dict(one, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"])
    p1, p3, both = model(one), model(other), model(batch)
    lo, hi = torch.minimum(p1, p3), torch.maximum(p1, p3)
    assert ((both >= lo - 1e-6) & (both <= hi + 1e-6)).all()  # a convex combination per pixel
    same = dict(batch, fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
    torch.testing.assert_close(model(same), p1)
    if weighting == "learned":
        both.sum().backward()
        assert all(p.grad is not None for p in model.weighting.parameters())


def test_icw_needs_the_normalization():
    model = _model()
    model.norm = None
    with pytest.raises(RuntimeError, match="norm"):
        model(_batch(two_refs=True))
