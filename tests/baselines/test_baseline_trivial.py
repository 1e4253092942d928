"""`persistence`, `delta`, `coarse` and the coarse block grid they share with fsdaf, fitfc and ubdf."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make, sample

from stf_bench.baselines.blocks import BlockGrid, fill_blocks
from stf_bench.baselines.kmeans import kmeans_1d
from stf_bench.baselines.tps import ThinPlateSpline


def field(h=40, w=40, seed=0):
    rng = np.random.default_rng(seed)
    return 300 + rng.normal(0, 3, (h, w))


def test_persistence_returns_f1_bit_identical():
    f1 = field().astype(np.float32)
    out = make("persistence")(sample(f1, field(seed=1), field(seed=2)))
    assert np.array_equal(out[0, 0].numpy(), f1)


def test_delta_with_no_coarse_change_returns_f1():
    f1, c1 = field().astype(np.float32), field(seed=1)
    out = make("delta")(sample(f1, c1, c1))
    assert np.array_equal(out[0, 0].numpy(), f1)
    out = make("delta")(sample(f1, c1, c1 + 2.5))
    np.testing.assert_allclose(out[0, 0].numpy(), f1 + 2.5, atol=1e-4)


def test_block_means_keep_partial_edge_blocks_and_need_half_valid():
    x = torch.arange(35.0).reshape(5, 7)
    grid = BlockGrid(3, 5, 7)
    assert grid.shape == (2, 3)
    means = grid.means(x)
    assert means[0, 0] == x[:3, :3].mean() and means[1, 2] == x[3:, 6:].mean()
    x[3, 6] = float("nan")  # the 2-pixel corner block is now exactly half valid
    assert grid.means(x)[1, 2] == x[4, 6]
    x[4, 6] = float("nan")
    assert torch.isnan(grid.means(x)[1, 2])
    # a crop at offset (1, 2) starts inside a block: its first block is the 2 × 1 remainder
    crop = BlockGrid(3, 4, 5, offset=(1, 2))
    assert crop.shape == (2, 3) and crop.pixel_counts()[0, 0] == 2


def test_fill_blocks_spreads_valid_neighbour_means_until_none_is_left():
    b = torch.tensor([[1.0, float("nan"), float("nan")], [3.0, float("nan"), float("nan")]], dtype=torch.float64)
    filled = fill_blocks(b)
    assert filled[0, 1] == 2.0 and filled[1, 1] == 2.0  # mean of 1 and 3
    assert filled[0, 2] == 2.0 and not torch.isnan(filled).any()


def test_coarse_of_a_constant_is_that_constant():
    c2 = np.full((30, 30), 297.25)
    out = make("coarse", coarse_block=7)(sample(c2, c2, c2))
    np.testing.assert_allclose(out.numpy(), 297.25, atol=1e-4)


def test_coarse_centre_pixel_of_every_full_block_is_the_block_mean():
    s = 5
    c2 = field(35, 35, seed=3)
    out = make("coarse", coarse_block=s)(sample(c2, c2, c2))[0, 0].numpy()
    means = c2.reshape(7, s, 7, s).mean(axis=(1, 3))
    np.testing.assert_allclose(out[s // 2 :: s, s // 2 :: s], means, atol=1e-4)


def test_coarse_single_warm_block_is_symmetric_about_its_centre():
    s = 5
    c2 = np.full((45, 45), 300.0)
    c2[20:25, 20:25] = 310.0
    out = make("coarse", coarse_block=s)(sample(c2, c2, c2))[0, 0].numpy()
    np.testing.assert_allclose(out, out[::-1, :], atol=1e-4)
    np.testing.assert_allclose(out, out[:, ::-1], atol=1e-4)
    np.testing.assert_allclose(out, out.T, atol=1e-4)
    assert out[22, 22] == pytest.approx(310.0, abs=1e-4) and out.min() < 300.0  # bicubic ringing is kept


def test_coarse_crop_with_offset_equals_the_cropped_scene_output():
    s = 4
    c2 = field(48, 48, seed=4)
    scene = make("coarse", coarse_block=s)(sample(c2, c2, c2))[0, 0].numpy()
    r0, c0, h, w = 10, 7, 30, 33
    crop = c2[r0 : r0 + h, c0 : c0 + w]
    out = make("coarse", coarse_block=s)(sample(crop, crop, crop, offset=(r0, c0)))[0, 0].numpy()
    m = 2 * s
    np.testing.assert_allclose(out[m:-m, m:-m], scene[r0 + m : r0 + h - m, c0 + m : c0 + w - m], atol=1e-4)


def test_kmeans_finds_sorted_classes_and_drops_empty_ones():
    x = torch.tensor([290.0, 290.5, 300.0, 300.2, 310.0, 309.8, float("nan")])
    labels, centres = kmeans_1d(x, 3)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, -1]
    np.testing.assert_allclose(centres.numpy(), [290.25, 300.1, 309.9])
    labels, centres = kmeans_1d(torch.full((10,), 300.0), 5)  # all starting centres equal: one class
    assert centres.tolist() == [300.0] and labels.tolist() == [0] * 10


def test_thin_plate_spline_reproduces_a_plane_and_interpolates_the_data():
    rng = np.random.default_rng(5)
    pts = torch.tensor(rng.uniform(0, 20, (30, 2)))
    plane = lambda r, c: 300 + 0.3 * r - 0.2 * c  # noqa: E731
    spline = ThinPlateSpline(pts, plane(pts[:, 0], pts[:, 1]), scale=5.0)
    grid = spline.evaluate_grid(20, 20, chunk_entries=1000)
    rr, cc = np.mgrid[0:20, 0:20] + 0.5
    np.testing.assert_allclose(grid.numpy(), plane(rr, cc), atol=1e-8)
    bumpy = torch.tensor(rng.normal(300, 2, 30))
    corners = torch.tensor([[0.5, 0.5], [3.5, 7.5], [10.5, 2.5]], dtype=torch.float64)
    spline = ThinPlateSpline(torch.cat([pts, corners]), torch.cat([bumpy, torch.tensor([299.0, 301.0, 305.0])]))
    np.testing.assert_allclose(spline.evaluate_grid(11, 8)[[0, 3, 10], [0, 7, 2]].numpy(), [299, 301, 305], atol=1e-8)
