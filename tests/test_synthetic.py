"""The synthetic STF-LST generator: files, georeference, determinism and every physical claim it records.

Files are read back with rasterio directly, so these tests check what any reader would see on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform, transform_bounds

from stf_bench.data.sources.synthetic import SyntheticSource
from stf_bench.errors import ConfigError, DataError

SMALL = dict(n_dates=6, height=96, width=96)
MODIS_SPHERE = CRS.from_proj4("+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs")
UTM31N = CRS.from_epsg(32631)


def _generate(tmp_path_factory, name, **kwargs):
    raw = SyntheticSource(**kwargs).generate(tmp_path_factory.mktemp(name) / "raw")
    return raw, json.loads((raw / "truth" / "synthetic.json").read_text())


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return _generate(tmp_path_factory, "seed0", **SMALL, seed=0)


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.crs, ds.transform, ds.nodata, ds.dtypes[0]


def _kelvin(path):
    """A written LST file in Kelvin with NaN where the export wrote 0."""
    celsius = _read(path)[0].astype(np.float64)
    return np.where(celsius == 0, np.nan, celsius + 273.15)


def _digests(raw):
    return {p.relative_to(raw).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(raw.rglob("*")) if p.is_file()}


def test_layout_and_georeference(series):
    raw, truth = series
    assert [d["date"] for d in truth["dates"]] == ["2014-08-10", "2016-02-05", "2018-05-17", "2020-09-11",
                                                   "2022-09-17", "2024-06-18"]
    for record in truth["dates"]:
        day = dt.date.fromisoformat(record["date"])
        assert record["landsat"] == f"Landsat/LC08_199027_{day:%Y%m%d}.tif"
        assert record["modis"] == f"MODIS/{day:%Y_%m_%d}.tif"
        fine, crs, affine, nodata, dtype = _read(raw / record["landsat"])
        assert (crs, tuple(affine)[:6], fine.shape, nodata, dtype) == (
            UTM31N, (30.0, 0.0, 406365.0, 0.0, -30.0, 5318535.0), (96, 96), 0.0, "float32")
        coarse, crs, affine, nodata, dtype = _read(raw / record["modis"])
        assert crs.to_dict()["proj"] == "sinu" and crs.to_dict()["datum"] == "WGS84"  # the Earth Engine declaration
        assert (affine.a, affine.b, affine.d, affine.e) == (1000.0, 0.0, 0.0, -1000.0)
        assert affine.c % 1000 == 0 and affine.f % 1000 == 0
        assert (nodata, dtype) == (0.0, "float32")
        assert -15 < np.median(fine[fine != 0]) < 50 and -15 < np.median(coarse[coarse != 0]) < 50  # Celsius
    landcover, crs, affine, _, dtype = _read(raw / "truth" / "landcover.tif")
    assert (crs, tuple(affine)[:6], landcover.shape, dtype) == (UTM31N, (30.0, 0.0, 406365.0, 0.0, -30.0, 5318535.0),
                                                                (96, 96), "uint8")
    assert set(np.unique(landcover)) == set(truth["classes"].values()) == {1, 2, 3, 4, 5, 6}


def test_modis_grid_covers_fine_footprint_on_the_sphere_and_is_19km_off_read_literally(series):
    raw, truth = series
    _, declared, affine, _, _ = _read(raw / truth["dates"][0]["modis"])
    coarse, _, _, _, _ = _read(raw / truth["dates"][0]["modis"])
    c_left, c_top = affine.c, affine.f
    c_right, c_bottom = affine @ (coarse.shape[1], coarse.shape[0])
    fine_bounds = (406365.0, 5318535.0 - 96 * 30, 406365.0 + 96 * 30, 5318535.0)
    left, bottom, right, top = transform_bounds(UTM31N, MODIS_SPHERE, *fine_bounds, densify_pts=21)
    assert c_left <= left - 1000 and c_right >= right + 1000 and c_bottom <= bottom - 1000 and c_top >= top + 1000
    _, literal_bottom, _, _ = transform_bounds(UTM31N, declared, *fine_bounds, densify_pts=21)
    assert 18_000 < bottom - literal_bottom < 20_000  # the real GEE defect: the sphere is what the numbers mean
    assert literal_bottom < c_bottom


def test_honest_crs_flag_changes_only_the_declaration(series, tmp_path):
    raw, truth = series
    honest = SyntheticSource(**SMALL, seed=0, gee_crs_defect=False).generate(tmp_path / "raw")
    for record in truth["dates"]:
        defect_pixels, _, defect_affine, _, _ = _read(raw / record["modis"])
        pixels, crs, affine, _, _ = _read(honest / record["modis"])
        assert crs.to_dict()["R"] == pytest.approx(6371007.181) and "datum" not in crs.to_dict()
        assert affine == defect_affine
        np.testing.assert_array_equal(pixels, defect_pixels)


def test_same_seed_same_bytes_other_seed_other_data(series, tmp_path_factory):
    raw, truth = series
    again, _ = _generate(tmp_path_factory, "seed0_again", **SMALL, seed=0)
    assert _digests(again) == _digests(raw)
    other, other_truth = _generate(tmp_path_factory, "seed1", **SMALL, seed=1)
    assert [d["date"] for d in other_truth["dates"]] != [d["date"] for d in truth["dates"]]
    assert (_read(other / "truth" / "landcover.tif")[0] != _read(raw / "truth" / "landcover.tif")[0]).mean() > 0.3


def test_dates_on_the_16_day_cycle_spread_over_years_and_seasons():
    source = SyntheticSource(n_dates=8, seed=3)
    dates = source.dates()
    start, end = dt.date(2013, 4, 1), dt.date(2024, 10, 15)
    assert dates == sorted(set(dates)) and len(dates) == 8
    assert all(start <= d <= end and (d - start).days % 16 == 0 for d in dates)
    assert {(d.month % 12) // 3 for d in dates} == {0, 1, 2, 3}  # DJF, MAM, JJA, SON
    assert dates[-1].year - dates[0].year >= 8
    assert SyntheticSource(n_dates=51).dates()[0] >= start


def test_cloud_gaps_are_clustered_bounded_and_recorded(series):
    raw, truth = series
    landsat = [_read(raw / r["landsat"])[0] == 0 for r in truth["dates"]]
    modis = [_read(raw / r["modis"])[0] == 0 for r in truth["dates"]]
    for record, fine_gap, coarse_gap in zip(truth["dates"], landsat, modis):
        assert fine_gap.mean() == pytest.approx(record["landsat_cloud_fraction"]) and fine_gap.mean() < 0.18
        assert coarse_gap.mean() == pytest.approx(record["modis_cloud_fraction"]) and coarse_gap.mean() < 0.08
    assert any(not gap.any() for gap in landsat) and any(not gap.any() for gap in modis)  # some dates fully clear
    gap = max(landsat, key=np.mean)
    assert gap.mean() > 0.05
    inner = gap[1:-1, 1:-1] & gap[:-2, 1:-1] & gap[2:, 1:-1] & gap[1:-1, :-2] & gap[1:-1, 2:]
    assert inner.sum() / gap[1:-1, 1:-1].sum() > 0.5  # scattered gaps at this fraction would give < 0.01


def _unchanged_class_pixels(raw, truth):
    """Initial land cover with every changed rectangle removed, so class statistics hold for the whole series."""
    landcover = _read(raw / "truth" / "landcover.tif")[0].copy()
    for change in truth["changes"]:
        (r0, r1), (c0, c1) = change["rows"], change["cols"]
        landcover[r0:r1, c0:c1] = 0
    return landcover


def test_seasonal_cycles_and_urban_heat(series):
    raw, truth = series
    ids = truth["classes"]
    landcover = _unchanged_class_pixels(raw, truth)
    images = {dt.date.fromisoformat(r["date"]): _kelvin(raw / r["landsat"]) for r in truth["dates"]}
    summer = next(img for d, img in images.items() if d.month in (6, 7, 8))
    winter = next(img for d, img in images.items() if d.month in (12, 1, 2))
    assert 293 < np.nanmean(summer) < 315 and 273 < np.nanmean(winter) < 290
    assert np.nanmean(summer) - np.nanmean(winter) > 12
    rural = np.isin(landcover, (ids["crop"], ids["forest"]))
    assert np.nanmean(summer[landcover == ids["urban"]]) - np.nanmean(summer[rural]) > 3
    assert np.nanmean(winter[landcover == ids["urban"]]) > np.nanmean(winter[rural])

    def amplitude(name):
        doy = np.array([d.timetuple().tm_yday for d in images]) * 2 * np.pi / 365.25
        means = np.array([np.nanmean(img[landcover == ids[name]]) for img in images.values()])
        design = np.stack([np.ones_like(doy), np.cos(doy), np.sin(doy)], axis=1)
        _, b, c = np.linalg.lstsq(design, means, rcond=None)[0]
        return np.hypot(b, c)

    assert amplitude("water") < 11 < 14 < amplitude("bare_soil")  # recorded cycles: 8 K and 17 K
    assert all(np.nanmin(img) > 260 and np.nanmax(img) < 330 for img in images.values())


def test_coarse_is_the_block_average_of_fine_truth_plus_the_recorded_bias(tmp_path_factory):
    size = 320  # ~50 MODIS pixels lie wholly inside the fine footprint
    raw, truth = _generate(tmp_path_factory, "bias", n_dates=4, height=size, width=size, seed=2)
    _, _, affine, _, _ = _read(raw / truth["dates"][0]["modis"])
    h, w = _read(raw / truth["dates"][0]["modis"])[0].shape
    rows, cols = np.mgrid[0:size, 0:size]
    xs, ys = transform(UTM31N, MODIS_SPHERE, (406365.0 + 30 * (cols + 0.5)).ravel(),
                       (5318535.0 - 30 * (rows + 0.5)).ravel())
    index = (np.floor((affine.f - np.asarray(ys)) / 1000) * w + np.floor((np.asarray(xs) - affine.c) / 1000))
    index = index.astype(int)  # the MODIS pixel holding each fine pixel centre, on the true sphere
    corner_r, corner_c = np.mgrid[0:h + 1, 0:w + 1]
    ux, uy = transform(MODIS_SPHERE, UTM31N, (affine.c + 1000.0 * corner_c).ravel(),
                       (affine.f - 1000.0 * corner_r).ravel())
    ux, uy = np.reshape(ux, corner_r.shape), np.reshape(uy, corner_r.shape)
    corner_in = (ux > 406365) & (ux < 406365 + size * 30) & (uy < 5318535) & (uy > 5318535 - size * 30)
    inside = (corner_in[:-1, :-1] & corner_in[1:, :-1] & corner_in[:-1, 1:] & corner_in[1:, 1:]).ravel()
    contrast = []
    for record in truth["dates"]:
        fine = _kelvin(raw / record["landsat"]).ravel()
        coarse = _kelvin(raw / record["modis"]).ravel()
        total = np.bincount(index, minlength=h * w)
        valid = np.bincount(index, np.isfinite(fine), minlength=h * w)
        block_mean = np.bincount(index, np.nan_to_num(fine), minlength=h * w) / np.maximum(valid, 1)
        usable = inside & (valid == total) & np.isfinite(coarse)
        assert usable.sum() >= 25
        residual = coarse[usable] - block_mean[usable]
        assert residual.mean() == pytest.approx(record["modis_bias_k"], abs=0.3)
        assert 0.3 < np.std(residual) < 0.8  # the per-pixel MODIS noise (0.5 K)
        contrast.append(np.std(block_mean[usable]))
    assert max(contrast) > 2.0  # the pixel-wise match is not a constant image matching its mean


def test_land_cover_changes_show_in_the_temperatures(series):
    raw, truth = series
    ids = truth["classes"]
    landcover = _read(raw / "truth" / "landcover.tif")[0]
    unchanged = _unchanged_class_pixels(raw, truth)
    harvests = [c for c in truth["changes"] if c["kind"] == "harvest"]
    assert len(harvests) == 2 and [c["kind"] for c in truth["changes"]].count("built_up") == 1
    seen = {"before": 0, "after": 0}
    for change in harvests:
        assert (change["from"], change["to"]) == (["crop"], "bare_soil")
        (r0, r1), (c0, c1) = change["rows"], change["cols"]
        field = np.zeros(landcover.shape, bool)
        field[r0:r1, c0:c1] = landcover[r0:r1, c0:c1] == ids["crop"]
        assert field.sum() == change["n_pixels"]
        for record in truth["dates"]:
            image = _kelvin(raw / record["landsat"])
            crop, bare = (np.nanmean(image[unchanged == ids[n]]) for n in ("crop", "bare_soil"))
            if abs(bare - crop) < 3 or np.isnan(image[field]).mean() > 0.5:
                continue  # the two classes are too close this season (or the field is under cloud)
            temperature = np.nanmean(image[field])
            after = record["date"] > change["date"]
            assert (abs(temperature - bare) < abs(temperature - crop)) == after, (change, record["date"])
            seen["after" if after else "before"] += 1
    assert seen["before"] > 0 and seen["after"] > 0


def test_generate_is_atomic_and_reuses_a_complete_export(series):
    raw, truth = series
    mtimes = {p: p.stat().st_mtime_ns for p in raw.rglob("*.tif")}
    assert SyntheticSource(**SMALL, seed=0).generate(raw) == raw
    assert {p: p.stat().st_mtime_ns for p in raw.rglob("*.tif")} == mtimes
    assert [p.name for p in raw.parent.iterdir()] == ["raw"]  # no temporary folder left behind
    with pytest.raises(DataError, match="synthetic.json"):
        SyntheticSource(**SMALL, seed=5).generate(raw)


def test_fingerprint_is_the_constructor_arguments():
    source = SyntheticSource(**SMALL, seed=4, start="2015-01-01", weather_k=1)
    fingerprint = source.fingerprint()
    assert fingerprint["seed"] == 4 and fingerprint["start"] == "2015-01-01" and fingerprint["weather_k"] == 1.0
    assert SyntheticSource(**fingerprint).fingerprint() == fingerprint
    assert json.loads(json.dumps(fingerprint)) == fingerprint


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n_dates=300), "n_dates=300 .* only 264"),
    (dict(start="April 2013"), "start='April 2013'"),
    (dict(height=8), "height=8"),
    (dict(landsat_cloud_max=1.5), "landsat_cloud_max=1.5"),
])
def test_bad_configuration_names_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticSource(**kwargs)
