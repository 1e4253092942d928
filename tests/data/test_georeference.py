"""Georeference by default; the STF-LST resize's misplacement of MODIS measured against the georeference (manifest,
table, warning); and the coarse pixel size on the fine grid that the store records for the block-based baselines."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from affine import Affine
from data_fixtures import FINE_SHAPE, FINE_TRANSFORM, UTM31N, compose, dates, make_raw
from hydra.utils import instantiate
from rasterio.crs import CRS
from rasterio.warp import transform, transform_bounds
from rich.console import Console

from stf_bench.baselines.blocks import BlockGrid, coarse_image
from stf_bench.data.datamodule import SceneDataset
from stf_bench.data.geotiff import MODIS_SINUSOIDAL
from stf_bench.data.normalization import AffineNorm
from stf_bench.data.preprocess import COARSE
from stf_bench.data.regrid import coarse_pixel_size, misregistration
from stf_bench.data.report import summary_table
from stf_bench.data.samples import SampleSpec
from stf_bench.data.scene import Grid, Scene
from stf_bench.data.store import build_dataset

FINE_GRID = Grid.from_rasterio(UTM31N, FINE_TRANSFORM, *FINE_SHAPE)
CELL = 990.0  # 33 fine pixels
DATASETS = ["synthetic_small", "synthetic", "folder", "stf_lst", "yanco", "gee", "stf_lst_gee"]


def cells_scene() -> Scene:
    """4 x 4 coarse cells of 990 m around the 66 x 66 fine grid, one cell of margin on each side, same CRS."""
    cgrid = Grid.from_rasterio(UTM31N, Affine(CELL, 0, FINE_TRANSFORM.c - CELL, 0, -CELL, FINE_TRANSFORM.f + CELL),
                               4, 4)
    coarse = 300.0 + np.arange(16, dtype=np.float32).reshape(4, 4)
    return Scene(dates(1)[0], np.full(FINE_SHAPE, 300.0, np.float32), FINE_GRID, coarse, cgrid, "l.tif", "m.tif")


def resize_shift_m() -> np.ndarray:
    """Per fine pixel, the distance (m) from its centre to the coarse point the resize takes its value from: along
    each axis the resize reads coarse centre index i·3/65, which lies at −990 + (index + 0.5)·990 m from the fine
    edge, while the pixel centre lies at (i + 0.5)·30 m."""
    i = np.arange(66)
    along = -CELL + (i * 3 / 65 + 0.5) * CELL - (i + 0.5) * 30.0
    return np.hypot(*np.meshgrid(along, along, indexing="ij"))


@pytest.mark.parametrize("entry", ["prepare", "train"])
def test_every_dataset_defaults_to_the_georeferenced_average_warp(entry):
    for dataset in DATASETS:
        cfg = compose(f"dataset={dataset}", config_name=entry)
        assert (cfg.preprocess.name, cfg.preprocess.regrid, cfg.preprocess.resampling) == (
            "reproject", "reproject", "average"), dataset
    faithful = compose("preprocess=stf_lst", config_name=entry).preprocess
    assert (faithful.regrid, faithful.resampling, faithful.misregistration_warn_m) == ("resize", "cubic", 250)


def test_resize_misregistration_is_measured_and_warned_about(caplog):
    expected = resize_shift_m()
    assert misregistration(FINE_GRID, cells_scene().coarse_grid) == pytest.approx(
        (expected.mean() / 1000, expected.max() / 1000), rel=5e-3)  # 0.40 km, 0.72 km at the corners
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.preprocess"):
        prep = instantiate(compose("preprocess=stf_lst").preprocess)([cells_scene()])
    (mean_km, max_km), = prep.misregistration
    assert (mean_km, max_km) == pytest.approx((expected.mean() / 1000, expected.max() / 1000), rel=5e-3)
    assert "misplaces MODIS by 0.40 km on average (max 0.72 km)" in caplog.text
    assert "preprocess.misregistration_warn_m=250 m on 1 of 1 dates" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.preprocess"):
        tolerant = instantiate(compose("preprocess=stf_lst", "preprocess.misregistration_warn_m=1000").preprocess)
        assert tolerant([cells_scene()]).misregistration == prep.misregistration
        georeferenced = instantiate(compose().preprocess)([cells_scene()])
    assert georeferenced.misregistration is None and "misplaces" not in caplog.text


def test_coarse_block_is_the_placed_coarse_pixel_size():
    prep = instantiate(compose("preprocess=stf_lst").preprocess)([cells_scene()])
    assert prep.coarse_block == (21.667, 21.667)  # the resize stretches 4 cells over 66 px: 65 / 3
    prep = instantiate(compose().preprocess)([cells_scene()])
    assert prep.coarse_block == (33.0, 33.0)  # 990 m / 30 m
    np.testing.assert_allclose(prep.values[0, COARSE][:33, :33], 305.0)  # cell (1, 1) of the 4 x 4, by its footprint


def test_coarse_block_differs_per_axis_where_the_sinusoidal_grid_is_sheared():
    """At 85° E, 48° N (UTM 45N) a MODIS row step moves ~35 fine px west: the coarse columns repeat every ~31.8 px
    along a fine row, the coarse rows every ~30.9 px along a fine column. Checked against how many coarse columns
    (rows) the scene's central fine row (column) crosses end to end."""
    utm45 = CRS.from_epsg(32645)
    (x,), (y,) = transform("EPSG:4326", utm45, [85.0], [48.0])
    fine = Grid.from_rasterio(utm45, Affine(30, 0, round(x), 0, -30, round(y)), 400, 400)
    res = 926.625433
    left, bottom, right, top = transform_bounds(utm45, MODIS_SINUSOIDAL, *fine.bounds, densify_pts=21)
    left, top = math.floor(left / res) * res, math.ceil(top / res) * res
    coarse = Grid.from_rasterio(MODIS_SINUSOIDAL, Affine(res, 0, left, 0, -res, top),
                                math.ceil((top - bottom) / res), math.ceil((right - left) / res))
    rows, cols = coarse_pixel_size(fine, coarse, "reproject")

    def coarse_coords(fine_rows, fine_cols):
        xs, ys = transform(utm45, MODIS_SINUSOIDAL, *(fine.affine @ (np.asarray(fine_cols) + 0.5,
                                                                     np.asarray(fine_rows) + 0.5)))
        return ~coarse.affine @ (np.asarray(xs), np.asarray(ys))

    u, _ = coarse_coords([200, 200], [0, 399])
    _, v = coarse_coords([0, 399], [200, 200])
    assert cols == pytest.approx(399 / abs(u[1] - u[0]), rel=2e-3) and cols == pytest.approx(31.86, abs=0.01)
    assert rows == pytest.approx(399 / abs(v[1] - v[0]), rel=2e-3) and rows == pytest.approx(30.88, abs=0.02)
    assert coarse_pixel_size(fine, coarse, "resize") == ((400 - 1) / (coarse.height - 1), 399 / (coarse.width - 1))
    assert coarse_pixel_size(fine, fine, "reproject") == (1.0, 1.0) and misregistration(fine, fine) == (0.0, 0.0)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("raw"), dates(3))


def build(raw, data_dir, *overrides):
    cfg = compose("dataset=folder", f"dataset.source.root={raw}", *overrides)
    return build_dataset(cfg.dataset, cfg.preprocess, data_dir)[0]


def rendered(store) -> str:
    console = Console(record=True, width=200)
    console.print(summary_table(store.manifest, store.path, False))
    return console.export_text()


def test_store_records_the_misregistration_and_the_table_shows_it(raw, tmp_path):
    store = build(raw, tmp_path, "preprocess=stf_lst")
    from stf_bench.data.sources.folder import FolderSource

    coarse_grid = FolderSource(raw).load()[0].coarse_grid
    mean_km, max_km = misregistration(store.grid, coarse_grid)
    assert mean_km > 0.25  # the fixture's MODIS grid has a margin: the resize stretches it over the fine grid
    m = store.manifest
    for entry in m["dates"]:
        assert (entry["misregistration_mean_km"], entry["misregistration_max_km"]) == (mean_km, max_km)
    assert m["misregistration"]["mean_km"] == pytest.approx(mean_km) and m["misregistration"]["warn_m"] == 250
    assert m["coarse_block"] == dict(zip(("rows", "cols"), (round(v, 3) for v in
                                                            coarse_pixel_size(store.grid, coarse_grid, "resize"))))
    text = rendered(store)
    assert "MODIS shift mean km" in text and f"{mean_km:.2f}" in text and f"{max_km:.2f}" in text
    assert f"{1000 * mean_km:.0f} m on average" in text

    georef = build(raw, tmp_path)
    assert georef.manifest["misregistration"] is None and "misregistration_mean_km" not in georef.manifest["dates"][0]
    assert "MODIS shift" not in rendered(georef)
    expected = tuple(round(v, 3) for v in coarse_pixel_size(georef.grid, coarse_grid, "reproject"))
    assert georef.coarse_block == expected and 33.0 < expected[0] < 34.0  # 1 km over 30 m, MODIS sphere in UTM


def test_baselines_take_the_block_from_the_store_unless_the_config_sets_it(raw, tmp_path):
    store = build(raw, tmp_path, "preprocess=stf_lst")
    (sample,) = SceneDataset(store, AffineNorm(0.0, 1.0), [SampleSpec(2, (1,))])
    assert tuple(sample["meta"]["coarse_block"]) == store.coarse_block != (33.0, 33.0)
    batch = {k: (torch.from_numpy(v)[None] if k != "meta" else v) for k, v in sample.items()}
    c2 = batch["coarse_tgt"][0, 0]

    def net(*overrides):
        cfg = compose("dataset=folder", f"dataset.source.root={raw}", "model=coarse", *overrides, config_name="train")
        return instantiate(cfg.model.net, device="cpu")

    from_store = net()
    assert from_store.coarse_block is None
    expected = coarse_image(c2, BlockGrid(store.coarse_block, *c2.shape))
    torch.testing.assert_close(from_store(batch)[0, 0], expected)
    override = net("dataset.coarse_block=10")
    torch.testing.assert_close(override(batch)[0, 0], coarse_image(c2, BlockGrid(10, *c2.shape)))
    assert not torch.allclose(expected, coarse_image(c2, BlockGrid(10, *c2.shape)))
    assert compose("dataset=yanco", "model=coarse", config_name="train").model.net.coarse_block == 10
