"""Fractional coarse blocks (the coarse pixel size on the fine grid is rarely an integer) and where the baselines
take the block size from: the sample's `meta["coarse_block"]` (the store's), unless the config sets one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make, sample

from stf_bench.baselines._windows import reflect_pad
from stf_bench.baselines.blocks import BlockGrid, coarse_image
from stf_bench.baselines.coarse import Coarse
from stf_bench.errors import ConfigError


def test_fractional_blocks_start_at_rounded_multiples_and_never_drift():
    grid = BlockGrid(30.8, 100, 64)  # rows start at round(k * 30.8) = 0, 31, 62, 92
    assert grid.shape == (4, 3)
    x = torch.arange(6400.0, dtype=torch.float64).reshape(100, 64)
    starts, col_starts = [0, 31, 62, 92, 100], [0, 31, 62, 64]
    expected = [[x[starts[i]:starts[i + 1], col_starts[j]:col_starts[j + 1]].mean() for j in range(3)]
                for i in range(4)]
    torch.testing.assert_close(grid.means(x), torch.tensor(expected, dtype=torch.float64))
    np.testing.assert_array_equal(grid.pixel_counts().numpy(), np.outer([31, 31, 30, 8], [31, 31, 2]))
    assert grid.spread(torch.arange(12.0).reshape(4, 3))[30:32, 30:32].tolist() == [[0.0, 1.0], [3.0, 4.0]]
    torch.testing.assert_close(grid.centres()[:, 0, 0], torch.tensor([15.5, 46.5, 77.0, 96.0], dtype=torch.float64))
    # after 1000 blocks the boundary is still where the coarse pixel ends: round(1000 * 30.8)
    assert int((BlockGrid(30.8, 30_801, 1).spread(torch.arange(1001.0)[:, None])[:, 0] == 1000).nonzero()[0]) == 30_800


def test_blocks_differ_per_axis_and_crops_keep_the_scene_blocks():
    scene = BlockGrid((33.1, 30.2), 120, 90)
    assert scene.shape == (4, 3) and scene.size == (33.1, 30.2)
    x = torch.rand(120, 90, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # rows 40-98, cols 30-89 of the scene: row blocks 1 (from 33, cut at 40) and 2 (66-98), col blocks 1 and 2
    crop = BlockGrid((33.1, 30.2), 59, 60, offset=(40, 30))
    assert crop.shape == (2, 2) and crop.pixel_counts()[:, 0].tolist() == [26.0 * 30, 33.0 * 30]
    outside = torch.full_like(x, float("nan"))
    outside[40:99, 30:90] = x[40:99, 30:90]
    torch.testing.assert_close(crop.means(x[40:99, 30:90], min_fraction=0.0),
                               scene.means(outside, min_fraction=0.0)[1:3, 1:3])


def test_bicubic_upsampling_of_fractional_blocks_matches_torch_at_that_scale():
    """torch's bicubic with scale_factor=30.5 puts output pixel o at input (o + 0.5)/30.5 − 0.5, as the block grid
    does; after the 2 reflected blocks (61 px) its output is the scene."""
    s = 30.5
    grid = BlockGrid(s, 100, 70)
    blocks = torch.rand(grid.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 10 + 290
    padded = reflect_pad(blocks, 2)
    ref = F.interpolate(padded[None, None], scale_factor=s, mode="bicubic", align_corners=False,
                        recompute_scale_factor=False)[0, 0]
    torch.testing.assert_close(grid.upsample(blocks), ref[61:161, 61:131])
    const = coarse_image(torch.full((50, 50), 297.25), BlockGrid((12.4, 9.7), 50, 50))
    torch.testing.assert_close(const, torch.full((50, 50), 297.25))


@pytest.mark.parametrize("model_id", ["coarse", "fsdaf", "fitfc", "ubdf"])
def test_block_methods_read_the_store_block_from_meta_unless_configured(model_id):
    rng = np.random.default_rng(3)
    f1 = 300 + rng.normal(0, 2, (40, 40))
    c1 = f1.copy()
    c2 = f1 + 3 + np.linspace(0, 2, 40)[None, :]
    from_meta = sample(f1, c1, c2)
    from_meta["meta"]["coarse_block"] = torch.tensor([[12.4, 9.7]])
    kwargs = {"coarse": {}, "fsdaf": dict(half_window=3, num_similar=6, num_pure=10),
              "fitfc": dict(half_window=3, num_similar=6, A_px=3.5), "ubdf": {}}[model_id]
    got = make(model_id, coarse_block=None, **kwargs)(from_meta)
    configured = make(model_id, coarse_block=[12.4, 9.7], **kwargs)(sample(f1, c1, c2))
    torch.testing.assert_close(got, configured)
    assert torch.isfinite(got).all()
    overridden = make(model_id, coarse_block=8, **kwargs)(from_meta)  # the config wins over the store
    torch.testing.assert_close(overridden, make(model_id, coarse_block=8, **kwargs)(sample(f1, c1, c2)))
    assert not torch.allclose(overridden, got)
    with pytest.raises(ConfigError, match=r"no meta\['coarse_block'\].*dataset\.coarse_block="):
        make(model_id, coarse_block=None, **kwargs)(sample(f1, c1, c2))
    with pytest.raises(ValueError, match=r"coarse_block = \[0.5, 33\]: must be a number >= 1"):
        Coarse(coarse_block=[0.5, 33], device="cpu", mem_budget_mb=64, tile_rows=None)
