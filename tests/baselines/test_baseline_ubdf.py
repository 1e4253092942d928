"""UBDF known answers (models.md part 3 §10)."""

from __future__ import annotations

import numpy as np
import torch
from conftest import block_means, make, sample
from scipy.optimize import lsq_linear

from stf_bench.baselines.ubdf import bounded_ridge_lsq


def test_class_constant_truth_is_unmixed_exactly():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, (40, 40))  # scattered at random at the fine scale
    f1 = np.array([290.0, 300.0, 310.0])[classes]
    f2 = np.array([296.0, 303.0, 318.0])[classes]
    c2 = block_means(f2, 8)
    m = make("ubdf", coarse_block=8, n_classes=3, ridge_mu=0.0)
    np.testing.assert_allclose(m(sample(f1, f1, c2))[0, 0].numpy(), f2, atol=1e-3)


def test_bounded_solver_matches_scipy_bvls():
    rng = np.random.default_rng(1)
    n, m, k = 40, 25, 5
    a = rng.dirichlet(np.ones(k), size=(n, m))
    truth = rng.uniform(250, 330, (n, k))
    b = np.einsum("nmk,nk->nm", a, truth) + rng.normal(0, 8, (n, m))
    b[:10] += 90.0  # these problems leave the upper bound
    prior, mu = b.mean(1), np.full(n, 0.05)
    lo, hi = 200.0, 350.0
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    ours = bounded_ridge_lsq(t(a), t(b), t(prior), t(mu), (lo, hi)).numpy()
    assert (ours >= lo).all() and (ours <= hi).all() and np.isclose(ours, hi).any()
    for i in range(n):
        aug = np.vstack([a[i], np.sqrt(mu[i]) * np.eye(k)])
        rhs = np.concatenate([b[i], np.sqrt(mu[i]) * np.full(k, prior[i])])
        ref = lsq_linear(aug, rhs, bounds=(lo, hi), method="bvls").x
        np.testing.assert_allclose(ours[i], ref, atol=1e-3)
