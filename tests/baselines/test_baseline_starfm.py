"""STARFM known answers (models.md part 3 §4)."""

from __future__ import annotations

import numpy as np
from conftest import block_means, make, sample


def scene(seed=0, h=32, w=32):
    rng = np.random.default_rng(seed)
    f1 = 300 + rng.normal(0, 3, (h, w))
    c1 = block_means(f1, 4) + rng.normal(0, 0.5, (h, w))
    c2 = c1 + 3 + rng.normal(0, 1, (h, w))
    return f1, c1, c2


def stripes(h=30, w=30, width=7):
    """Piecewise-constant F1: vertical stripes of 290, 300, 310 K (spacing 10 K > τ = σ/2 ≈ 4 K)."""
    values = np.array([290.0, 300.0, 310.0])
    return np.tile(values[(np.arange(w) // width) % 3], (h, 1))


def test_one_by_one_window_equals_delta():
    f1, c1, c2 = scene()
    s = sample(f1, c1, c2)
    out = make("starfm", half_window=0)(s)
    np.testing.assert_allclose(out.numpy(), make("delta")(s).numpy(), atol=1e-5)


def test_piecewise_constant_scene_with_uniform_coarse_change_is_recovered():
    f1 = stripes()
    c1 = block_means(f1, 5)  # mixed blocks: S ≠ 0 there, so the window sum, not the shortcut, does the work
    out = make("starfm", coarse_block=5, half_window=6, A_px=6)(sample(f1, c1, c1 + 4.0))
    np.testing.assert_allclose(out[0, 0].numpy(), f1 + 4.0, atol=1e-4)
    out = make("starfm", coarse_block=5, half_window=6, A_px=6, log_weight=True)(sample(f1, c1, c1 + 4.0))
    np.testing.assert_allclose(out[0, 0].numpy(), f1 + 4.0, atol=1e-4)


def test_two_identical_pairs_equal_one_pair():
    f1, c1, c2 = scene(1)
    m = make("starfm", half_window=5, A_px=5)
    np.testing.assert_allclose(m(sample(f1, c1, c2, f1, c1)).numpy(), m(sample(f1, c1, c2)).numpy(), atol=1e-4)


def test_a_pair_without_coarse_change_is_used_exactly():
    """Pair 1 never qualifies for the shortcut (S1 = 1 K, T1 >= 3 K); pair 2 has T = 0 everywhere, so the paper's
    shortcut returns its delta value F3 + C2 − C3 = F3."""
    rng = np.random.default_rng(2)
    f1 = 300 + rng.normal(0, 3, (32, 32))
    c1 = f1 - 1.0
    c2 = c1 + 3.0 + rng.uniform(0, 1, f1.shape)
    f3, c3 = f1 + 7.0, c2.copy()
    out = make("starfm", half_window=3, A_px=3)(sample(f1, c1, c2, f3, c3))
    np.testing.assert_allclose(out[0, 0].numpy(), f3, atol=1e-4)
