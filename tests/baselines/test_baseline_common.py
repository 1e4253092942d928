"""The tests every classical baseline passes (models.md part 3 §2), on small synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ALL, REPO, TWO_PAIR, make, sample
from omegaconf import OmegaConf

from stf_bench.baselines.delta import Delta

S = 6  # coarse block of these tests
SMALL = {  # windows shrunk so the 24 × 24 scenes still have interior pixels and the tests stay fast
    "starfm": dict(half_window=3, A_px=3),
    "estarfm": dict(half_window=3),
    "ubestarfm": dict(half_window=3, threshold_block_px=12),
    "fsdaf": dict(half_window=3, num_similar=6, num_pure=10),
    "fitfc": dict(half_window=3, num_similar=6, A_px=3.5),
    "stnlffm": dict(half_window=3),
}


def build(model_id: str, **overrides):
    return make(model_id, coarse_block=S, **{**SMALL.get(model_id, {}), **overrides})


def textured(seed: int = 0, h: int = 24, w: int = 24):
    """Two reference pairs and a target: smooth fields plus texture, a MODIS-like coarse image (block means plus an
    offset), and changes that differ by pair."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    f1 = 300 + 4 * np.sin(yy / 4.0) + 3 * np.cos(xx / 5.0) + rng.normal(0, 1.0, (h, w))
    f3 = f1 + 2 + 0.5 * np.sin(xx / 3.0)
    f2 = f1 + 6 + np.cos(yy / 6.0)
    coarse = lambda f, off: np.kron(f.reshape(h // S, S, w // S, S).mean(axis=(1, 3)), np.ones((S, S))) + off  # noqa
    return f1, coarse(f1, 0.5), coarse(f2, 1.5), f3, coarse(f3, 0.2)


@pytest.mark.parametrize("model_id", ALL)
def test_config_builds_the_method_from_the_dataset_block(model_id):
    cfg = OmegaConf.load(REPO / "conf" / "model" / f"{model_id}.yaml")
    assert cfg.id == model_id and cfg.lightning_module == "none" and cfg.params_target == 0
    assert OmegaConf.to_container(cfg.net)["coarse_block"] == "${dataset.coarse_block}"
    m = make(model_id, coarse_block=11)
    assert m.coarse_block == 11 and m.units == "K" and m.whole_scene is True
    assert m.pairs_required == (2 if model_id in TWO_PAIR else 0 if model_id == "coarse" else 1)
    assert cfg.n_refs == (2 if model_id in TWO_PAIR else 1)
    assert sum(p.numel() for p in m.parameters()) == 0


@pytest.mark.parametrize("model_id", ALL)
def test_homogeneous_scene_with_uniform_change_is_recovered(model_id):
    h = w = 24
    f1 = c1 = np.full((h, w), 300.0)
    f3 = c3 = np.full((h, w), 302.0)
    c2 = np.full((h, w), 305.0)
    samples = [sample(f1, c1, c2, f3, c3)] + ([] if model_id in TWO_PAIR else [sample(f1, c1, c2)])
    for s in samples:
        out = build(model_id)(s)
        expected = 300.0 if model_id == "persistence" else 305.0
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("model_id", ALL)
def test_tiles_do_not_change_the_result(model_id):
    f1, c1, c2, f3, c3 = textured(1)
    f1[5:9, 10:14] = np.nan
    s = sample(f1, c1, c2, f3, c3)
    whole = build(model_id, tile_rows=24)(s)
    tiled = build(model_id, tile_rows=7)(s)
    np.testing.assert_allclose(tiled.numpy(), whole.numpy(), atol=1e-4)


@pytest.mark.parametrize("model_id", ALL)
def test_nan_hole_is_filled_by_the_fallback_chain_and_counted(model_id):
    f1, c1, c2, f3, c3 = textured(2)
    f1[8:12, 6:11] = np.nan  # 20 px hole
    c2[0, 0] = np.nan
    m = build(model_id)
    out = m(sample(f1, c1, c2, *((f3, c3) if model_id in TWO_PAIR else ())))[0, 0].numpy()
    persistence = model_id == "persistence"  # copies F1, so it needs no C2 where F1 exists
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(c2) | persistence)
    stats, n = m.last_stats, f1.size
    assert sum(stats.values()) == pytest.approx(1.0)
    if model_id == "coarse":
        assert (stats["predicted"] * n, stats["none"] * n) == pytest.approx((n - 1, 1))
    else:  # F1 missing: delta is undefined too, so the hole takes the coarse value
        assert (stats["coarse"] * n, stats["none"] * n) == pytest.approx((20, 0 if persistence else 1))


@pytest.mark.parametrize("model_id", ALL)
def test_output_is_batch_of_independent_scenes_float32_on_input_device(model_id):
    a, b = sample(*textured(3)), sample(*textured(4))
    batch = {k: torch.cat([a[k], b[k]]) for k in a if k != "meta"}
    batch["meta"] = {"offset": torch.tensor([[0, 0], [0, 0]])}
    m = build(model_id)
    out = m(batch)
    assert out.shape == (2, 1, 24, 24) and out.dtype == torch.float32 and out.device == batch["coarse_tgt"].device
    np.testing.assert_allclose(out[1:].numpy(), m(b).numpy(), atol=1e-5)


@pytest.mark.parametrize("model_id", TWO_PAIR)
def test_two_pair_method_names_the_pairing_to_use(model_id):
    f1, c1, c2, _, _ = textured(5)
    with pytest.raises(ValueError, match="pairing=two_refs"):
        build(model_id)(sample(f1, c1, c2))


def test_bad_configuration_and_sample_fail_with_the_key():
    with pytest.raises(ValueError, match="coarse_block = 0"):
        Delta(coarse_block=0, device="cpu", mem_budget_mb=64, tile_rows=None)
    f1, c1, c2, _, _ = textured(6)
    s = sample(f1, c1, c2)
    del s["coarse_ref"]
    with pytest.raises(KeyError, match="coarse_ref"):
        build("delta")(s)
    s = sample(f1, c1, c2)
    s["coarse_tgt"] = s["coarse_tgt"][:, :, :10]
    with pytest.raises(ValueError, match="fine_ref"):
        build("delta")(s)
