"""FSDAF known answers (models.md part 3 §7)."""

from __future__ import annotations

import numpy as np
import torch
from conftest import block_means, make, sample

from stf_bench.baselines.blocks import BlockGrid
from stf_bench.baselines.kmeans import kmeans_1d


def stripes(h=30, w=30, width=7):
    """Two classes in vertical stripes (290 and 300 K) whose width does not divide the block size 5."""
    return np.tile(np.where((np.arange(w) // width) % 2 == 0, 290.0, 300.0), (h, 1))


def test_two_class_stripes_unmix_exactly_and_are_recovered():
    s = 5
    f1 = stripes()
    f2 = f1 + np.where(f1 == 290.0, 2.0, 6.0)
    c1, c2 = block_means(f1, s), block_means(f2, s)
    m = make("fsdaf", coarse_block=s, n_classes=2, half_window=4, num_similar=8)
    # the unmixing step on its own: per-class changes (2, 6)
    grid = BlockGrid(s, *f1.shape)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    valid = torch.ones(f1.shape, dtype=torch.bool)
    labels, centres = kmeans_1d(t(f1), 2)
    assert centres.tolist() == [290.0, 300.0]
    fractions = torch.stack([grid.counts(labels == c) for c in range(2)]) / grid.counts(valid)
    change_b = grid.means(t(c2)) - grid.means(t(c1))
    class_change = m.class_changes(fractions, change_b, grid.valid_fraction(valid))
    np.testing.assert_allclose(class_change.numpy(), [2.0, 6.0], atol=1e-4)
    residual = change_b - torch.einsum("cij,c->ij", fractions, class_change)
    np.testing.assert_allclose(residual.numpy(), 0.0, atol=1e-4)
    # the whole method
    out = m(sample(f1, c1, c2))[0, 0].numpy()
    np.testing.assert_allclose(out, f2, atol=1e-4)


def test_block_residual_goes_to_the_block_with_the_unexplained_change():
    """A warm 3 × 3 spot appears inside one block: the class changes (1 K for both classes) cannot explain it, so
    that block's residual is handed to its pixels, within the allowed range; every other block has no residual."""
    s = 6
    f1 = stripes(36, 36, width=9)
    f2 = f1 + 1.0
    f2[14:17, 14:17] += 12.0  # inside block (2, 2): rows and cols 12-17
    c1, c2 = block_means(f1, s), block_means(f2, s)
    out = make("fsdaf", coarse_block=s, n_classes=2, half_window=0, num_similar=1)(sample(f1, c1, c2))[0, 0].numpy()
    spot_block = np.s_[12:18, 12:18]
    elsewhere = np.ones(f1.shape, dtype=bool)
    elsewhere[spot_block] = False
    np.testing.assert_allclose(out[elsewhere], f2[elsewhere], atol=1e-4)
    change = (out - f1)[spot_block]
    assert change.mean() > 1.0 + 1.0  # most of the block's 3 K residual arrives (clipping takes some)
    assert out.max() <= max(c2.max(), f1.max() + 1.0) + 1e-4  # step 8: clipped to the scene's C2 / F_TP range
