"""STNLFFM known answers (models.md part 3 §9)."""

from __future__ import annotations

import numpy as np
from conftest import block_means, make, sample

from stf_bench.baselines.stnlffm import patch_kernel


def stripes(h=30, w=30, width=7):
    values = np.array([290.0, 300.0, 310.0])
    return np.tile(values[(np.arange(w) // width) % 3], (h, 1))


def test_uniform_coarse_change_recovers_piecewise_constant_f1_for_any_ridge():
    f1 = stripes()
    c1 = block_means(f1, 5) + np.random.default_rng(0).normal(0, 0.3, f1.shape)
    for ridge in (1e-3, 1.0, 1e3):  # C2 = C1 + Δ: a = 1 and b = Δ whatever the ridge
        m = make("stnlffm", coarse_block=5, half_window=4, ridge_k2=ridge)
        np.testing.assert_allclose(m(sample(f1, c1, c1 + 6.0))[0, 0].numpy(), f1 + 6.0, atol=1e-3)


def test_one_by_one_window_equals_delta():
    rng = np.random.default_rng(1)
    f1 = 300 + rng.normal(0, 3, (24, 24))
    c1 = f1 + rng.normal(0, 1, f1.shape)
    c2 = c1 + 2 + rng.normal(0, 1, f1.shape)
    s = sample(f1, c1, c2)
    for ridge in (0.5, 1.0):
        out = make("stnlffm", half_window=0, ridge_k2=ridge)(s)
        np.testing.assert_allclose(out.numpy(), make("delta")(s).numpy(), atol=1e-4)


def test_non_local_weights_prefer_candidates_whose_coarse_value_matches_the_target():
    """Two similar groups: A (F 300 K, C1 300 K) and B (F 300.4 K, C1 303 K); C2 = C1 + 1 K, so G = F + 1 K.
    For a pixel of A, δ is 1 K² for A and 4 K² for B: with h = 0.5 K group B weighs e^-12 of A, and the
    prediction is A's G; with a huge h the weights are equal and the prediction is the candidates' mean G."""
    f1 = np.full((12, 9), 300.0)
    c1 = np.full((12, 9), 300.0)
    f1[:, 5:], c1[:, 5:] = 300.4, 303.0
    f1[9:], c1[9:] = 320.0, 320.0  # not similar; widens σ(F1) so that A and B are similar to each other
    s = sample(f1, c1, c1 + 1.0)
    sharp = make("stnlffm", half_window=4, h_k=0.5)(s)[0, 0].numpy()
    assert abs(sharp[4, 2] - 301.0) < 1e-3
    flat = make("stnlffm", half_window=4, h_k=1e4)(s)[0, 0].numpy()
    n_a, n_b = 9 * 7, 9 * 2  # window of (4, 2): rows 0-8; columns -2..6 reflect to 2, 1, 0..4 (A) and 5, 6 (B)
    assert abs(flat[4, 2] - (301.0 * n_a + 301.4 * n_b) / (n_a + n_b)) < 1e-3


def test_patch_kernel_is_nested_squares_normalized():
    assert patch_kernel(1) == [(0, 0, 1.0)]
    k = {(oy, ox): g for oy, ox, g in patch_kernel(3)}
    assert abs(sum(k.values()) - 1.0) < 1e-12
    assert k[(0, 0)] == k[(0, 1)] == k[(1, 1)]  # radius 1: every offset lies in the one square
    k = {(oy, ox): g for oy, ox, g in patch_kernel(5)}
    inner, outer = 1 / 9 + 1 / 25, 1 / 25  # squares of radius 1 and 2, before normalizing
    assert k[(0, 0)] == k[(1, -1)] and abs(k[(0, 0)] / k[(2, 0)] - inner / outer) < 1e-12
