"""Known-answer tests for the leaderboard metrics (shared/specs/metrics.md, 'Checks the implementation must pass')."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity
from torchmetrics.image import StructuralSimilarityIndexMeasure

from stf_bench.metrics import (
    aggregate,
    edge_metric,
    lbp_codes,
    lbp_metric,
    roberts_edge,
    scene_metrics,
    SSIM_MIN_WEIGHT,
    scoring_mask,
    ssim,
    ssim_torch,
)

L = 40.0
YANCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "yanco"


def field(shape=(40, 52), seed=0) -> np.ndarray:
    """A smooth random LST-like field in Kelvin (structure at a few pixels plus fine noise)."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    return 300.0 + 8.0 * smooth / smooth.std() + rng.normal(0.0, 0.3, shape)


def all_observed(a: np.ndarray) -> np.ndarray:
    return np.ones(a.shape, bool)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_pure_offset_and_psnr_known_answer():
    ref = field()
    m = scene_metrics(ref + 2.0, ref, all_observed(ref), L)
    assert m["rmse"] == pytest.approx(2.0, abs=1e-12)
    assert m["mae"] == pytest.approx(2.0, abs=1e-12)
    assert m["bias"] == pytest.approx(2.0, abs=1e-12)
    assert m["ubrmse"] == pytest.approx(0.0, abs=1e-9)
    assert m["r"] == pytest.approx(1.0, abs=1e-12)
    assert m["psnr"] == pytest.approx(20 * math.log10(20.0), abs=1e-9)
    assert m["n_pixels"] == ref.size and m["n_pred_nonfinite"] == 0
    assert m["sse"] == pytest.approx(4.0 * ref.size, rel=1e-12)


def test_r2_known_answers_including_negative():
    ref = 300.0 + np.where(np.indices((20, 24)).sum(0) % 2 == 0, 1.0, -1.0)  # mean 300, population var 1
    obs = all_observed(ref)
    shifted = scene_metrics(ref + 0.5, ref, obs, L)
    assert shifted["r2"] == pytest.approx(0.75) and shifted["rmse"] == pytest.approx(0.5)
    inverted = scene_metrics(300.0 - 2.0 * (ref - 300.0), ref, obs, L)  # e = -3 (R - R̄): SSE/SST = 9
    assert inverted["r2"] == pytest.approx(-8.0) and inverted["r"] == pytest.approx(-1.0)


def test_skill_known_answer_and_common_mask():
    ref = field()
    obs = all_observed(ref)
    assert scene_metrics(ref + 1.0, ref, obs, L, delta_pred=ref + 2.0)["skill"] == pytest.approx(0.5)
    assert math.isnan(scene_metrics(ref + 1.0, ref, obs, L)["skill"])
    # Model error 1 K on the left half, 3 K on the right; the delta prediction only covers the left half,
    # so skill compares both on the left half: 1 - 1/2.
    pred = ref + np.where(np.arange(ref.shape[1]) < 26, 1.0, 3.0)
    delta = np.where(np.arange(ref.shape[1]) < 26, ref + 2.0, np.nan)
    assert scene_metrics(pred, ref, obs, L, delta_pred=delta)["skill"] == pytest.approx(0.5)


def test_optional_columns_known_answers():
    ref = 300.0 + np.zeros((16, 16))
    ref[:, 8:] = 310.0  # scene range 10 K, mean 305 K
    err = np.where(np.arange(16) % 2 == 0, 0.5, -1.5)[None, :] * np.ones((16, 1))
    optional = ("psnr_scene_range", "ergas", "within_1k", "within_2k")
    m = scene_metrics(ref + err, ref, all_observed(ref), L, optional=optional)
    rmse = math.sqrt((0.25 + 2.25) / 2)
    assert m["rmse"] == pytest.approx(rmse)
    assert m["psnr_scene_range"] == pytest.approx(20 * math.log10(10.0 / rmse))
    assert m["ergas"] == pytest.approx(100 * 0.03 * rmse / 305.0)
    assert m["within_1k"] == pytest.approx(50.0) and m["within_2k"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="sam"):
        scene_metrics(ref, ref, all_observed(ref), L, optional=("sam",))


def test_identical_images_are_perfect():
    ref = field()
    m = scene_metrics(ref, ref, all_observed(ref), L)
    assert m["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert m["edge"] == 0.0 and m["lbp"] == 0.0 and m["rmse"] == 0.0
    assert m["psnr"] == math.inf


def test_ssim_matches_scikit_image_on_random_fields():
    for seed in range(3):
        ref = field(seed=seed)
        pred = ref + np.random.default_rng(10 + seed).normal(0.0, 1.5, ref.shape) + 0.7
        expected = structural_similarity(
            pred, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L
        )
        assert ssim(pred, ref, L) == pytest.approx(expected, abs=1e-4)
        assert scene_metrics(pred, ref, all_observed(ref), L)["ssim"] == pytest.approx(expected, abs=1e-10)


def test_ssim_matches_torchmetrics_map_on_interior_centres():
    """torchmetrics 1.9 averages also the reflect-padded edge centres; on the interior centres the maps agree."""
    ref = field()
    pred = ref + np.random.default_rng(5).normal(0.0, 1.5, ref.shape)
    metric = StructuralSimilarityIndexMeasure(
        gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=L, return_full_image=True
    )
    _, full = metric(torch.tensor(pred)[None, None], torch.tensor(ref)[None, None])
    assert ssim(pred, ref, L) == pytest.approx(float(full[0, 0, 5:-5, 5:-5].mean()), abs=1e-4)


def test_sparse_masks_do_not_inflate_ssim():
    """metrics.md: with 99 % of pixels missing SSIM is NaN or within 0.02 of the full value; a lone pixel never ≈ 1."""
    ref = field((96, 96), seed=3)
    pred = ndimage.gaussian_filter(ref, 2.0)  # a blurred prediction: the old rule read 0.77 full, 0.94 at 99 % missing
    full = ssim(pred, ref, L)
    for fraction in (0.5, 0.95, 0.99):
        observed = np.random.default_rng(7).random(ref.shape) >= fraction
        value = scene_metrics(pred, ref, observed, L)["ssim"]
        assert math.isnan(value) or abs(value - full) <= 0.02, (fraction, value, full)
    half = scene_metrics(pred, ref, np.random.default_rng(7).random(ref.shape) >= 0.5, L)
    assert half["ssim_centres"] > 1000 and half["ssim"] == pytest.approx(full, abs=0.02)
    lone = np.zeros(ref.shape, bool)
    lone[48, 48] = True
    m = scene_metrics(ref + 1.0, ref, lone, L)  # the old rule scored this 0.99999
    assert math.isnan(m["ssim"]) and m["ssim_centres"] == 0 and m["rmse"] == pytest.approx(1.0)
    assert math.isnan(ssim(ref + 1.0, ref, L, lone))


def test_ssim_centres_need_half_the_window_weight():
    """A 20×20 observed block: an edge centre holds 0.633 of the Gaussian weight, a corner 0.633² = 0.40 < 0.5."""
    ref = field((40, 40))
    block = np.zeros(ref.shape, bool)
    block[10:30, 10:30] = True
    m = scene_metrics(ref + 0.5, ref, block, L)
    assert SSIM_MIN_WEIGHT == 0.5
    assert m["ssim_centres"] == 400 - 4  # all block pixels but its four corners
    assert m["n_pixels"] == 400


def test_ssim_torch_batch_invariant_and_equal_to_numpy():
    refs = [field(seed=s) for s in range(4)]
    preds = [r + np.random.default_rng(20 + s).normal(0.0, 1.0, r.shape) for s, r in enumerate(refs)]
    valid = [all_observed(r) for r in refs]
    valid[1][10:20, 5:30] = False  # a gap, handled identically by both implementations
    valid[2] = np.random.default_rng(2).random(refs[2].shape) >= 0.6  # sparse: some centres below the min weight
    valid[3] = np.random.default_rng(3).random(refs[3].shape) >= 0.99  # no centre qualifies: skipped
    assert math.isnan(ssim(preds[3], refs[3], L, valid[3]))
    t = lambda arrs, dtype: torch.tensor(np.stack(arrs)[:, None], dtype=dtype)  # noqa: E731
    singles = [ssim(p, r, L, v) for p, r, v in zip(preds, refs, valid)]
    batch = ssim_torch(t(preds, torch.float32), t(refs, torch.float32), L, torch.tensor(np.stack(valid)[:, None]))
    assert float(batch) == pytest.approx(np.mean(singles[:3]), abs=1e-4)  # float32 Kelvin
    v3 = torch.tensor(valid[3][None, None])
    assert math.isnan(float(ssim_torch(t(preds[3:], torch.float64), t(refs[3:], torch.float64), L, v3)))
    for i in range(3):
        v = torch.tensor(valid[i][None, None])
        one = ssim_torch(t(preds[i : i + 1], torch.float64), t(refs[i : i + 1], torch.float64), L, v)
        assert float(one) == pytest.approx(singles[i], abs=1e-10)
    assert singles[0] != pytest.approx(singles[1], abs=1e-3)  # the images differ, so the batch mean is informative


def test_nan_outside_omega_changes_nothing():
    ref = field()
    obs = all_observed(ref)
    obs[5:12, 20:30] = False  # a cloud: not observed
    region = np.zeros(ref.shape, bool)
    region[3:37, 4:48] = True
    pred = ref + np.random.default_rng(1).normal(0.0, 1.0, ref.shape)
    delta = ref + 1.5
    outside = ~obs | ~region
    outside[:2] = outside[-2:] = True  # border=2
    outside[:, :2] = outside[:, -2:] = True
    polluted = pred.copy()
    polluted[outside] = np.nan
    wild = pred.copy()
    wild[outside] = 1e4
    ref_polluted = ref.copy()
    ref_polluted[~obs] = np.nan
    kw = dict(border=2, region=region, delta_pred=delta)
    base = scene_metrics(pred, ref, obs, L, **kw)
    assert same(base, scene_metrics(polluted, ref, obs, L, **kw))
    assert same(base, scene_metrics(wild, ref_polluted, obs, L, **kw))
    assert base["n_pred_nonfinite"] == 0


def test_nan_inside_omega_is_reported_and_excluded():
    ref = field()
    obs = all_observed(ref)
    pred = ref + 1.0
    pred[20, 10] = pred[21, 30] = np.nan
    pred[22, 40] = np.inf
    m = scene_metrics(pred, ref, obs, L)
    assert m["n_pred_nonfinite"] == 3
    assert m["n_pixels"] == ref.size - 3
    assert m["rmse"] == pytest.approx(1.0) and math.isfinite(m["ssim"]) and math.isfinite(m["edge"])
    assert scoring_mask(ref, pred, obs).sum() == ref.size - 3


def test_border_and_region_reduce_n_pixels():
    ref = field((20, 30))
    obs = all_observed(ref)
    assert scene_metrics(ref + 1, ref, obs, L)["n_pixels"] == 600
    assert scene_metrics(ref + 1, ref, obs, L, border=2)["n_pixels"] == 16 * 26
    region = np.zeros(ref.shape, bool)
    region[:10, :15] = True
    assert scene_metrics(ref + 1, ref, obs, L, region=region)["n_pixels"] == 150
    assert scene_metrics(ref + 1, ref, obs, L, border=2, region=region)["n_pixels"] == 8 * 13


def test_bad_inputs_raise_clear_errors():
    ref = field()
    obs = all_observed(ref)
    with pytest.raises(ValueError, match="observed.*astype"):
        scene_metrics(ref, ref, obs.astype(np.uint8), L)
    with pytest.raises(ValueError, match="data_range"):
        scene_metrics(ref, ref, obs, 0.0)
    with pytest.raises(ValueError, match="border"):
        scene_metrics(ref, ref, obs, L, border=-1)
    with pytest.raises(ValueError, match="no observed"):
        scene_metrics(ref, ref, np.zeros(ref.shape, bool), L)
    with pytest.raises(ValueError, match="pred"):
        scene_metrics(ref[:-1], ref, obs, L)


def test_roberts_and_lbp_code_known_answers():
    assert roberts_edge(np.array([[1.0, 2.0], [3.0, 5.0]]))[0, 0] == 5.0  # |1-5| + |2-3|
    patch = np.full((3, 3), 300.0)
    patch[0, 0] = 300.3  # top-left: exceeds centre + 0.2 K -> bit 128
    patch[0, 1] = 300.2  # top: not strictly above the tolerance -> 0
    patch[1, 2] = 301.0  # right -> bit 16
    patch[2, 1] = 299.0  # bottom: below -> 0
    assert lbp_codes(patch)[0, 0] == 144


def test_edge_sign_and_contrast_known_answers():
    ref = field()
    mask = all_observed(ref)
    blurred = ndimage.gaussian_filter(ref, 1.5)
    sharpened = ref + 1.0 * (ref - blurred)
    assert edge_metric(blurred, ref, mask) < -0.1
    assert edge_metric(sharpened, ref, mask) > 0.1
    # Doubling every local difference doubles every Roberts edge: (2R - R) / (2R + R) = 1/3; halving gives -1/3.
    assert edge_metric(2.0 * ref - 300.0, ref, mask) == pytest.approx(1 / 3, abs=1e-4)
    assert edge_metric(0.5 * ref + 150.0, ref, mask) == pytest.approx(-1 / 3, abs=1e-4)


def test_edge_scores_only_the_top_ten_percent_reference_edges():
    rng = np.random.default_rng(4)
    ref = np.full((30, 30), 300.0)
    ref[10:20, 10:20] += 10.0 * rng.random((10, 10))  # the only edges: ~15 % of the 28x28 interior anchors
    pred = ref.copy()
    far = np.ones(ref.shape, bool)
    far[8:22, 8:22] = False  # perturb only pixels no top-edge Roberts support touches
    pred[far] += rng.normal(0.0, 1.0, far.sum())
    assert edge_metric(pred, ref, all_observed(ref)) == 0.0


def test_lbp_zero_for_identical_positive_for_noise():
    yy, xx = np.indices((30, 30))
    ref = 300.0 + 0.05 * xx + 0.03 * yy  # a gentle gradient: no neighbour beyond the 0.2 K tolerance
    mask = all_observed(ref)
    assert lbp_codes(ref).max() == 0
    assert lbp_metric(ref, ref, mask) == 0.0
    noisy = ref + np.random.default_rng(3).normal(0.0, 1.0, ref.shape)
    assert lbp_metric(noisy, ref, mask) > 0.5
    assert lbp_metric(ref, noisy, mask) < -0.5  # a smoothed prediction loses texture


def test_aggregate_pooled_rmse_over_scenes_of_different_sizes():
    a, b = field((12, 12), seed=1), field((24, 24), seed=2)
    sa = scene_metrics(a + 1.0, a, all_observed(a), L)  # 144 px, error 1 K
    sb = scene_metrics(b - 2.0, b, all_observed(b), L)  # 576 px, error 2 K
    agg = aggregate([sa, sb])
    assert agg["rmse_mean"] == pytest.approx(1.5) and agg["rmse_median"] == pytest.approx(1.5)
    assert agg["rmse_std"] == pytest.approx(math.sqrt(0.5))
    assert agg["rmse_pooled"] == pytest.approx(math.sqrt((144 * 1 + 576 * 4) / 720))
    assert agg["bias_mean"] == pytest.approx(-0.5)
    assert agg["n_scenes"] == 2 and agg["n_pixels"] == 720 and agg["n_pred_nonfinite"] == 0
    assert agg["ssim_centres"] == 2 * 2 + 14 * 14 and agg["n_scenes_without_ssim"] == 0  # (n - 10)² interior centres
    lone = np.zeros(b.shape, bool)
    lone[12, 12] = True
    sparse = aggregate([sa, scene_metrics(b - 2.0, b, lone, L)])
    assert sparse["n_scenes_without_ssim"] == 1 and math.isnan(sparse["ssim_mean"])  # NaN is shown, not skipped
    assert math.isnan(aggregate([sa])["rmse_std"])
    with pytest.raises(ValueError, match="scene 1"):
        aggregate([sa, scene_metrics(b, b, all_observed(b), L, optional=("ergas",))])


@pytest.mark.skipif(not YANCO.is_dir(), reason="shared Yanco sample data not present")
def test_yanco_persistence_and_temporal_delta_known_values():
    rasterio = pytest.importorskip("rasterio")

    def read(name: str) -> np.ndarray:
        with rasterio.open(YANCO / name) as ds:
            a = ds.read(1).astype(np.float64)
        a[a < -1e30] = np.nan
        return a

    f1, f2 = read("Landsat_LST_cloudrm_20160205.tif"), read("Landsat_LST_cloudrm_20160308.tif")
    c1, c2 = read("MOD11A1_LST_cloudrm_20160205.tif"), read("MOD11A1_LST_cloudrm_20160308.tif")
    delta = f1 + (c2 - c1)
    obs = np.isfinite(f2)
    persistence = scene_metrics(f1, f2, obs, 60.0, delta_pred=delta)
    temporal = scene_metrics(delta, f2, obs, 60.0)
    assert persistence["rmse"] == pytest.approx(8.85, abs=0.01)
    assert temporal["rmse"] == pytest.approx(4.98, abs=0.01) and temporal["bias"] == pytest.approx(-4.4, abs=0.05)
    assert persistence["n_pred_nonfinite"] == 1  # F1 has one missing pixel: reported, not hidden
    assert persistence["skill"] == pytest.approx(1 - persistence["rmse"] / temporal["rmse"], abs=1e-9)
    assert persistence["skill"] < 0  # persistence is worse than the trivial temporal-delta method
