"""Whole-scene prediction through the tiler: where tiles go, which tile owns each pixel, and that tiling changes
nothing for a model that works pixel by pixel."""

from __future__ import annotations

import pytest
import torch

from stf_bench.models.prediction import _inner, predict_scene, tile_offsets


def scene(h: int, w: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand((2, 1, h, w), generator=gen) for k in ("fine_ref", "coarse_ref", "coarse_tgt")}
    batch["meta"] = {"dates": ["2020-01-01,2019-12-31"] * 2, "offset": torch.zeros(2, 2)}
    return batch


class Pixelwise:
    """F1 + C2 - C1 (the temporal delta), refusing inputs that are not `size` x `size` when a size is given."""

    def __init__(self, size: int | None = None) -> None:
        self.size, self.shapes = size, []

    def __call__(self, batch: dict) -> torch.Tensor:
        shape = tuple(batch["coarse_tgt"].shape[-2:])
        self.shapes.append(shape)
        if self.size is not None:
            assert shape == (self.size, self.size)
        return batch["fine_ref"] + batch["coarse_tgt"] - batch["coarse_ref"]


def test_offsets_of_a_950_scene_in_256_tiles():
    assert tile_offsets(950, 256) == [0, 128, 256, 384, 512, 640, 694]
    assert tile_offsets(512, 256) == [0, 128, 256]  # already flush: no extra tile
    assert tile_offsets(256, 256) == [0] and tile_offsets(100, 256) == [0]


@pytest.mark.parametrize("length", [256, 257, 300, 383, 384, 512, 700, 950, 1000])
def test_every_pixel_is_owned_by_exactly_one_tile_away_from_its_edges(length):
    tile = 256
    offsets = tile_offsets(length, tile)
    owned = _inner(offsets, tile, length)
    assert owned[0][0] == 0 and owned[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(owned, owned[1:]))  # contiguous: no gap, no overlap
    for off, (start, stop) in zip(offsets, owned):
        assert off <= start < stop <= off + tile
        # a quarter tile of context on each side, except where the tile touches the scene border
        assert start == 0 or start - off >= tile // 4
        assert stop == length or off + tile - stop >= tile // 4


def test_tiled_prediction_equals_the_untiled_one():
    batch = scene(300, 950)
    model = Pixelwise(size=256)
    tiled = predict_scene(model, batch, size_multiple=256, fixed_size=256)
    assert set(model.shapes) == {(256, 256)} and len(model.shapes) == 2 * 7  # rows 0, 44; columns 0, 128, ..., 694
    torch.testing.assert_close(tiled, Pixelwise()(batch), rtol=0, atol=0)


def test_each_pixel_comes_from_the_centre_of_its_tile():
    # a model that returns each pixel's distance to the nearest edge of the tile it sits in
    def edge_distance(batch):
        n = batch["coarse_tgt"].shape[-1]
        local = torch.arange(n, dtype=torch.float32)
        return torch.minimum(local, n - 1 - local).expand_as(batch["coarse_tgt"]).clone()

    batch = scene(64, 950)
    out = predict_scene(edge_distance, batch, fixed_size=256)[0, 0, 0]
    assert torch.isfinite(out).all()
    inner = out[64:950 - 64]  # away from the scene border every pixel keeps a quarter tile of context
    assert inner.min() >= 256 // 4 - 1


def test_scene_smaller_than_the_tile_is_padded_and_cropped():
    batch = scene(64, 80)
    model = Pixelwise(size=256)
    out = predict_scene(model, batch, size_multiple=256, fixed_size=256)
    assert out.shape == (2, 1, 64, 80) and model.shapes == [(256, 256)]
    torch.testing.assert_close(out, Pixelwise()(batch), rtol=0, atol=0)


def test_size_multiple_pads_once_and_crops():
    batch = scene(50, 70)
    model = Pixelwise()
    out = predict_scene(model, batch, size_multiple=32)
    assert model.shapes == [(64, 96)] and out.shape == (2, 1, 50, 70)
    torch.testing.assert_close(out, Pixelwise()(batch), rtol=0, atol=0)
