"""Fit-FC known answers (models.md part 3 §8)."""

from __future__ import annotations

import numpy as np
from conftest import make, sample


def blockwise(s: int, nb: int = 6, seed: int = 0) -> np.ndarray:
    """F1 constant within each s × s block, independent block values in 290-310 K."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.uniform(290, 310, (nb, nb)), np.ones((s, s)))


def test_linear_coarse_change_is_reproduced_exactly_without_ridge():
    for s in (5, 8):
        f1 = blockwise(s, seed=s)
        c1 = f1.copy()
        c2 = 1.1 * c1 - 27.0
        out = make("fitfc", coarse_block=s, rm_ridge_k2=0.0, half_window=4, num_similar=5, A_px=4.5)
        np.testing.assert_allclose(out(sample(f1, c1, c2))[0, 0].numpy(), 1.1 * f1 - 27.0, atol=1e-3)


def spatial_filter(f1: np.ndarray, w: int, n: int, a_px: float) -> np.ndarray:
    """Brute-force SF: weighted mean (1/(1 + d/A)) of the n window pixels closest to F1(c) (ties: nearer first)."""
    h, wd = f1.shape
    padded = np.pad(f1, w, mode="reflect")
    dy, dx = np.mgrid[-w : w + 1, -w : w + 1]
    dist = np.hypot(dy, dx).ravel()
    order = np.lexsort((np.arange(dist.size), dist))
    rank = np.empty(dist.size)
    rank[order] = np.arange(dist.size)
    out = np.empty_like(f1)
    for r in range(h):
        for c in range(wd):
            win = padded[r : r + 2 * w + 1, c : c + 2 * w + 1].ravel()
            best = np.argsort(np.abs(win - f1[r, c]) + 1e-7 * rank, kind="stable")[:n]
            wt = 1.0 / (1.0 + dist[best] / a_px)
            out[r, c] = (wt * win[best]).sum() / wt.sum()
    return out


def test_huge_ridge_gives_the_spatial_filter_of_f1_plus_the_uniform_change():
    rng = np.random.default_rng(1)
    f1 = 300 + rng.normal(0, 3, (20, 20))
    c1 = f1 + rng.normal(0, 0.5, f1.shape)
    m = make("fitfc", coarse_block=5, rm_ridge_k2=1e9, half_window=3, num_similar=6, A_px=3.5)
    out = m(sample(f1, c1, c1 + 4.0))[0, 0].numpy()
    np.testing.assert_allclose(out, spatial_filter(f1, 3, 6, 3.5) + 4.0, atol=1e-3)
