"""Regridding (the faithful STF-LST resize vs the georeferenced warp), footprint checks, and the preprocessing
variants' values and masks, down to the GeoTIFFs the store writes."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from data_fixtures import FINE_SHAPE, FINE_TRANSFORM, KELVIN, UTM31N, compose, dates, fine_c, fine_gap, make_raw
from hydra.utils import instantiate

from stf_bench.data.preprocess import COARSE, FINE, Preprocessor
from stf_bench.data.regrid import check_overlap, footprint_coverage, mask_to_fine_grid
from stf_bench.data.scene import Grid, Scene
from stf_bench.data.sources.folder import FolderSource
from stf_bench.data.store import build_dataset
from stf_bench.errors import ConfigError, DataError

FINE_GRID = Grid.from_rasterio(UTM31N, FINE_TRANSFORM, *FINE_SHAPE)
CELL = 990.0  # 33 fine pixels


def ramp_scene(shift_m: float = 0.0) -> Scene:
    """Coarse 4x4 cells of 990 m around the fine grid (one cell of margin), 300 K + 1 K/km eastwards from the fine
    grid's west edge; `shift_m` moves the coarse georeference east without changing its values."""
    left, top = FINE_TRANSFORM.c - CELL, FINE_TRANSFORM.f + CELL
    centres = left + CELL * (np.arange(4) + 0.5) - FINE_TRANSFORM.c
    coarse = np.broadcast_to(300.0 + 0.001 * centres, (4, 4)).astype(np.float32)
    cgrid = Grid.from_rasterio(UTM31N, Affine(CELL, 0, left + shift_m, 0, -CELL, top), 4, 4)
    fine = np.full(FINE_SHAPE, 300.0, np.float32)
    return Scene(dates(1)[0], fine, FINE_GRID, coarse, cgrid, "l.tif", "m.tif")


def variant(name: str, *overrides: str) -> Preprocessor:
    return instantiate(compose(f"preprocess={name}", *overrides).preprocess)


def test_reproject_is_georeferenced_and_resize_stretches_the_array():
    fine_x = 15.0 + 30.0 * np.arange(66)  # fine pixel centres from the west edge (m)
    warped = variant("nofill", "preprocess.resampling=bilinear")([ramp_scene()]).values[0, COARSE]
    np.testing.assert_allclose(warped, np.broadcast_to(300.0 + 0.001 * fine_x, FINE_SHAPE), atol=1e-3)
    # the default, average: each 30 m pixel takes the MODIS cell it lies in (cells of 33 px from the west edge)
    footprint = variant("nofill")([ramp_scene()]).values[0, COARSE]
    np.testing.assert_allclose(footprint[:, :33], 300.495, atol=1e-4)
    np.testing.assert_allclose(footprint[:, 33:], 301.485, atol=1e-4)
    resized = variant("stf_lst")([ramp_scene()]).values[0, COARSE]
    # align_corners: the first and last coarse centres land on the first and last fine pixels
    np.testing.assert_allclose(resized[:, 0], 300.0 - 0.495, atol=1e-4)
    np.testing.assert_allclose(resized[:, -1], 300.0 + 2.475, atol=1e-4)
    np.testing.assert_allclose(resized, np.broadcast_to(resized[0], FINE_SHAPE), atol=5e-4)  # no north-south change


def test_resize_ignores_the_coarse_georeference_and_reproject_follows_it():
    shifted, plain = ramp_scene(shift_m=500.0), ramp_scene()
    resize = variant("stf_lst")
    np.testing.assert_array_equal(resize([shifted]).values, resize([plain]).values)
    warp = variant("nofill", "preprocess.resampling=bilinear")
    moved = warp([shifted]).values[0, COARSE] - warp([plain]).values[0, COARSE]
    np.testing.assert_allclose(moved[:, 20:], -0.5, atol=1e-3)  # 500 m east = 0.5 K less at a given place


def test_footprint_coverage_and_overlap_check(caplog):
    half = Grid.from_rasterio(UTM31N, FINE_TRANSFORM, 66, 33)  # the western half of the fine footprint
    assert footprint_coverage(FINE_GRID, half) == pytest.approx(0.5)
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.regrid"):
        assert check_overlap(FINE_GRID, half, "l.tif", "m.tif") == pytest.approx(0.5)
    assert "m.tif covers only 50.0% of l.tif" in caplog.text
    far = Grid.from_rasterio(UTM31N, FINE_TRANSFORM @ Affine.translation(0, 1000), 66, 66)
    with pytest.raises(DataError, match=r"footprints of l\.tif and m\.tif do not overlap: only 0%"):
        check_overlap(FINE_GRID, far, "l.tif", "m.tif")
    wrong_crs = Grid.from_rasterio("EPSG:4326", FINE_TRANSFORM, 66, 66)  # UTM metres read as degrees
    with pytest.raises(DataError, match="wrong CRS or transform"):
        check_overlap(FINE_GRID, wrong_crs, "l.tif", "m.tif")


def test_bad_variant_values_fail_before_reading():
    with pytest.raises(ConfigError, match=r"preprocess\.resampling='lanczos'"):
        Preprocessor("x", resampling="lanczos")
    with pytest.raises(ConfigError, match=r"preprocess\.regrid='warp'"):
        Preprocessor("x", regrid="warp")
    with pytest.raises(ConfigError, match=r"preprocess\.fine_fill='mean'"):
        Preprocessor("x", fine_fill="mean")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = make_raw(tmp_path_factory.mktemp("raw"), dates(3))
    return FolderSource(root).load()


@pytest.mark.parametrize("name", ["stf_lst", "reproject"])
def test_focal_variants_fill_every_gap_and_keep_observed_masks(scenes, name):
    prep = variant(name)(scenes)
    assert prep.grid == FINE_GRID and prep.values.dtype == np.float32
    assert np.isfinite(prep.values).all()
    for k, scene in enumerate(scenes):
        observed = prep.observed[k, FINE]
        np.testing.assert_array_equal(observed, scene.fine_valid)
        np.testing.assert_array_equal(prep.filled[k, FINE], ~scene.fine_valid)
        np.testing.assert_array_equal(prep.values[k, FINE][observed], scene.fine[observed])
        method = "resize" if name == "stf_lst" else "reproject"
        coarse_obs = mask_to_fine_grid(scene.coarse_valid, scene.coarse_grid, FINE_GRID, method)
        np.testing.assert_array_equal(prep.observed[k, COARSE], coarse_obs)
        np.testing.assert_array_equal(prep.filled[k, COARSE], ~coarse_obs)
    assert 0 < prep.filled[0, COARSE].sum() < prep.filled[0, COARSE].size  # coarse pixel (2, 2) of date 0
    assert not prep.filled[1:, COARSE].any()


def test_nofill_keeps_gaps_as_nan(scenes):
    prep = variant("nofill")(scenes)
    np.testing.assert_array_equal(np.isnan(prep.values), ~prep.observed)
    assert not prep.filled.any()
    assert np.isnan(prep.values[0, COARSE]).sum() == (~prep.observed[0, COARSE]).sum() > 0


def test_temporal_variant_interpolates_between_dates(scenes):
    prep = variant("temporal")(scenes)
    gap = np.zeros(FINE_SHAPE, bool)
    gap[fine_gap(1)] = True
    gap[fine_gap(0)] = gap[fine_gap(2)] = False  # observed on both neighbours
    # the dates are 16 days apart and the values linear in the date: interpolation gives date 1's own values
    np.testing.assert_allclose(prep.values[1, FINE][gap], (fine_c(1) + KELVIN)[gap], atol=1e-4)
    np.testing.assert_array_equal(prep.filled[1, FINE], ~scenes[1].fine_valid)
    assert np.isfinite(prep.values).all()


def test_an_odd_fine_grid_is_warped_onto_the_common_one():
    base = ramp_scene()
    odd_grid = Grid.from_rasterio(UTM31N, FINE_TRANSFORM @ Affine.translation(1, 0), *FINE_SHAPE)
    odd_fine = np.broadcast_to(np.arange(66, dtype=np.float32) + 280, FINE_SHAPE)
    odd = Scene(dates(2)[1], odd_fine, odd_grid, base.coarse, base.coarse_grid, "odd.tif", "m.tif")
    prep = variant("nofill")([base, odd, ramp_scene()])
    assert prep.grid == FINE_GRID
    np.testing.assert_array_equal(prep.values[1, FINE][:, 1:], odd_fine[:, :-1])  # one column east
    assert np.isnan(prep.values[1, FINE][:, 0]).all() and not prep.observed[1, FINE][:, 0].any()


@pytest.mark.parametrize("name", ["stf_lst", "reproject"])
def test_written_pairs_carry_the_fine_grid(tmp_path, name):
    days = dates(2)
    cfg = compose("dataset=folder", f"dataset.source.root={make_raw(tmp_path / 'raw', days)}", f"preprocess={name}")
    store, _ = build_dataset(cfg.dataset, cfg.preprocess, tmp_path / "data")
    for k, day in enumerate(days):
        for band, prefix in ((FINE, "L"), (COARSE, "M")):
            with rasterio.open(store.path / f"{prefix}_{day:%Y%m%d}.tif") as ds:
                assert ds.crs == UTM31N and ds.transform == FINE_TRANSFORM and ds.shape == FINE_SHAPE
                assert ds.dtypes == ("float32",) and math.isnan(ds.nodata) and ds.tags()["units"] == "K"
                np.testing.assert_array_equal(ds.read(1), store.values[k, band])
        with rasterio.open(store.path / f"Q_{day:%Y%m%d}.tif") as ds:
            flags = ds.read()
            assert ds.transform == FINE_TRANSFORM and ds.dtypes == ("uint8", "uint8")
        np.testing.assert_array_equal(flags & 1, store.observed[k])
        np.testing.assert_array_equal(flags >> 1, store.filled[k])
