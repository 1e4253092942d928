"""ESTARFM and ubESTARFM known answers (models.md part 3 §5-6): the sensor offset is where they differ."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make, sample

from stf_bench.baselines.blocks import BlockGrid
from stf_bench.baselines.ubestarfm import block_sample_std

W = dict(half_window=4)
UB = dict(half_window=4, threshold_block_px=16)


def textured(h=32, w=32, seed=0):
    """A smooth 290-310 K field with a little noise: every pixel has plenty of similar neighbours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    return 300 + 6 * np.sin(yy / 5.0) * np.cos(xx / 7.0) + 3 * np.sin(xx / 4.0) + rng.normal(0, 0.3, (h, w))


def test_identical_pairs_give_equal_date_weights_and_v_one():
    f1 = textured()
    c1 = f1 + np.random.default_rng(1).normal(0.5, 1.0, f1.shape)
    out = make("estarfm", **W)(sample(f1, c1, c1 + 5.0, f1, c1))
    np.testing.assert_allclose(out[0, 0].numpy(), f1 + 5.0, atol=1e-4)


def test_constant_offset_cancels_in_estarfm_and_is_kept_by_ubestarfm():
    f1 = textured()
    f3, f2 = f1 + 2.0, f1 + 5.0
    c1, c2, c3 = f1 + 3.0, f2 + 3.0, f3 + 3.0
    s = sample(f1, c1, c2, f3, c3)
    np.testing.assert_allclose(make("estarfm", **W)(s)[0, 0].numpy(), f2, atol=1e-4)
    ub = make("ubestarfm", **UB)(s)[0, 0].numpy()
    np.testing.assert_allclose(ub, c2, atol=1e-4)
    assert abs(float(np.mean(ub - c2))) < 1e-5


def test_date_dependent_offsets_bias_estarfm_by_the_weighted_reference_offsets():
    """Offsets 2, 4, 1 K at t1, t2, t3; coarse change between the references is 1 K, so V = 1.
    Date weights: |mean(C2 − C1)| = 7 K and |mean(C2 − C3)| = 6 K, so T1 = 6/13 and T3 = 7/13."""
    f1 = textured(seed=2)
    f3, f2 = f1 + 2.0, f1 + 5.0
    s = sample(f1, f1 + 2.0, f2 + 4.0, f3, f3 + 1.0)
    t1, t3 = 6 / 13, 7 / 13
    np.testing.assert_allclose(make("estarfm", **W)(s)[0, 0].numpy(), f2 + 4 - (2 * t1 + 1 * t3), atol=1e-4)
    np.testing.assert_allclose(make("ubestarfm", **UB)(s)[0, 0].numpy(), f2 + 4.0, atol=1e-4)


def test_conversion_coefficient_is_fitted_when_the_coarse_image_changed_enough():
    """F = 2C − 300 at both references and the truth: the pooled slope is V = 2 (exact fit, significant), the
    references differ by 4 K ≥ 3 K, so ESTARFM recovers F2 = F1 + 2·5 K. A 2 K reference change keeps V = 1."""
    f1 = textured(seed=3)
    c1 = (f1 + 300.0) / 2.0
    for ref_change, v in ((4.0, 2.0), (2.0, 1.0)):
        c3 = c1 + ref_change
        f3 = 2.0 * c3 - 300.0
        out = make("estarfm", **W)(sample(f1, c1, c1 + 5.0, f3, c3))[0, 0].numpy()
        inv1, inv3 = 1 / 5.0, 1 / (5.0 - ref_change)  # date weights from the coarse changes since each reference
        t1, t3 = inv1 / (inv1 + inv3), inv3 / (inv1 + inv3)
        expected = t1 * (f1 + v * 5.0) + t3 * (f3 + v * (5.0 - ref_change))
        np.testing.assert_allclose(out, expected, atol=1e-3)
        if v == 2.0:
            np.testing.assert_allclose(out, f1 + 10.0, atol=1e-3)


def test_implausible_prediction_falls_back_to_the_fine_only_estimate():
    f1 = textured(seed=4)
    f3 = f1 + 2.0
    c2 = np.full(f1.shape, 305.0)
    c2[10:22, 10:22] = 360.0  # a 360 K spike larger than the window
    for model_id, kw in (("estarfm", W), ("ubestarfm", UB)):
        out = make(model_id, **kw)(sample(f1, f1, c2, f3, f3))[0, 0].numpy()
        inside = out[14:18, 14:18]
        # the fine-only estimate is a weighted mean of F1 and F3 over the window, far from the 360 K coarse value
        assert inside.min() >= f1[10:22, 10:22].min() - 1e-3 and inside.max() <= f3[10:22, 10:22].max() + 1e-3
        assert np.all(out[:3, :3] < 340)  # outside the spike the regular prediction stays


def test_ubestarfm_thresholds_are_the_sample_std_of_each_block():
    """Per 16-px block here (200 px by default), ddof 1, over the finite pixels of that block only."""
    x = torch.tensor(textured(seed=5), dtype=torch.float32)
    x[:, 16:] *= 1.5
    x[:, 16:] -= 150
    x[0, 0] = float("nan")
    std = block_sample_std(x, BlockGrid(16, 32, 32))
    for r, c in ((0, 0), (0, 16), (16, 0), (16, 16)):
        block = x[r : r + 16, c : c + 16].double()
        expected = block[torch.isfinite(block)].std(correction=1)
        np.testing.assert_allclose(std[r : r + 16, c : c + 16].numpy(), expected.item(), rtol=1e-5)
