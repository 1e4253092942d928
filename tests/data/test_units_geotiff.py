"""Units at the edge (detect, convert, check the sensors agree) and GeoTIFF reading/writing, MODIS sphere included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from data_fixtures import GEE_SINUSOIDAL, UTM31N, write_tif
from rasterio.crs import CRS
from rasterio.warp import transform

from stf_bench.data.geotiff import MODIS_SPHERE_RADIUS, modis_sphere_crs, read_band, write_geotiff
from stf_bench.data.scene import Grid
from stf_bench.data.units import check_sensors_agree, detect_units, to_kelvin
from stf_bench.errors import DataError

WGS84 = CRS.from_epsg(4326)


def test_detect_and_convert_units():
    celsius = np.array([[-5.0, 12.5], [30.0, np.nan]], np.float32)
    assert detect_units(celsius, "c.tif") == "C"
    assert detect_units(celsius + 273.15, "k.tif") == "K"
    kelvin = to_kelvin(celsius, "auto", "c.tif")
    np.testing.assert_allclose(kelvin, [[268.15, 285.65], [303.15, np.nan]], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(to_kelvin(celsius + 273.15, "K", "k.tif"), celsius + np.float32(273.15))
    assert to_kelvin(celsius, "c", "c.tif")[0, 0] == pytest.approx(268.15)  # case-insensitive declaration


def test_implausible_values_become_gaps():
    kelvin = to_kelvin(np.array([290.0, 500.0, 100.0, 300.0], np.float32), "K", "k.tif")
    np.testing.assert_array_equal(np.isnan(kelvin), [False, True, True, False])


def test_undetectable_and_contradicted_units_name_the_file_and_value():
    with pytest.raises(DataError, match=r"raw\.tif: cannot tell the temperature units.*1\.5e\+04.*fine_units"):
        detect_units(np.full(4, 15000.0, np.float32), "raw.tif")  # MODIS digital numbers (K / 0.02)
    with pytest.raises(DataError, match=r"m\.tif: declared units C.*300.*coarse_units"):
        to_kelvin(np.full(4, 300.0, np.float32), "C", "m.tif")
    with pytest.raises(DataError, match=r"x\.tif: unknown units 'F'"):
        to_kelvin(np.full(4, 300.0, np.float32), "F", "x.tif")
    with pytest.raises(DataError, match=r"e\.tif: the scene is all no-data"):
        to_kelvin(np.full(4, np.nan, np.float32), "auto", "e.tif")


def test_sensors_must_agree_within_tens_of_kelvin():
    fine = np.full((2, 2), 300.0, np.float32)
    check_sensors_agree(fine, fine + 5.0, "l.tif", "m.tif")
    # Landsat written in °F (80 °F) read as °C: 353 K against a MODIS 300 K.
    with pytest.raises(DataError, match=r"l\.tif.*m\.tif.*\+53\.1 K.*fine_units / coarse_units"):
        check_sensors_agree(to_kelvin(np.full((2, 2), 80.0, np.float32), "auto", "l.tif"), fine, "l.tif", "m.tif")


def test_read_band_nodata_from_tag_or_declared(tmp_path):
    data = np.array([[0.0, 20.0], [-3.4e38, np.inf]], np.float32)
    tagged = write_tif(tmp_path / "tagged.tif", data, UTM31N, Affine(30, 0, 0, 0, -30, 0), nodata=-3.4e38)
    values, grid, applied = read_band(tagged)
    np.testing.assert_array_equal(np.isnan(values), [[False, False], [True, True]])
    assert applied == pytest.approx(-3.4e38) and values.dtype == np.float32
    assert grid == Grid.from_rasterio(UTM31N, Affine(30, 0, 0, 0, -30, 0), 2, 2)
    values, _, applied = read_band(tagged, nodata=0)  # a declaration replaces the tag
    assert applied == 0
    np.testing.assert_array_equal(np.isnan(values), [[True, False], [False, True]])
    untagged = write_tif(tmp_path / "untagged.tif", data, UTM31N, Affine(30, 0, 0, 0, -30, 0))
    values, _, applied = read_band(untagged)
    assert applied is None and values[0, 0] == 0.0 and values[1, 0] == np.float32(-3.4e38)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_read_band_index_and_missing_crs(tmp_path):
    path = write_tif(tmp_path / "two.tif", np.stack([np.full((2, 2), 1.0), np.full((2, 2), 2.0)]), UTM31N,
                     Affine(30, 0, 0, 0, -30, 0))
    assert read_band(path, band=2)[0][0, 0] == 2.0
    with pytest.raises(DataError, match=r"two\.tif: band 3 requested but the file has 2 band"):
        read_band(path, band=3)
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32") as ds:
        ds.write(np.ones((1, 2, 2), np.float32))
    with pytest.raises(DataError, match=r"bare\.tif: the file has no coordinate reference system"):
        read_band(bare)


def test_corrupt_file_is_a_data_error(tmp_path):
    path = write_tif(tmp_path / "t.tif", np.ones((64, 64)), UTM31N, Affine(30, 0, 0, 0, -30, 0))
    path.write_bytes(path.read_bytes()[:2000])  # truncated: the header survives, the pixels do not
    with pytest.raises(DataError, match=r"t\.tif: cannot be read as a GeoTIFF.*corrupt or truncated"):
        read_band(path)


def test_modis_sphere_crs_detection():
    sphere, fixed = modis_sphere_crs(GEE_SINUSOIDAL)
    assert fixed and sphere.to_dict()["R"] == pytest.approx(MODIS_SPHERE_RADIUS)
    assert modis_sphere_crs(sphere) == (sphere, False)
    assert modis_sphere_crs(UTM31N) == (UTM31N, False)
    other = CRS.from_proj4("+proj=sinu +lon_0=10 +datum=WGS84 +units=m")  # not the MODIS definition
    assert modis_sphere_crs(other) == (other, False)


def test_gee_declared_sinusoidal_lands_on_the_true_footprint(tmp_path):
    """A MODIS tile over Orléans whose coordinates are on the sphere (as MODIS), declared on WGS 84 (as Earth Engine
    exports): read back, its north-west corner is at the right longitude/latitude; read literally, ~19 km off."""
    lon0, lat1 = 1.75, 48.01  # the north-west corner of the Orléans region
    x0 = MODIS_SPHERE_RADIUS * math.radians(lon0) * math.cos(math.radians(lat1))
    y1 = MODIS_SPHERE_RADIUS * math.radians(lat1)
    path = write_tif(tmp_path / "2020_01_01.tif", np.full((28, 28), 20.0), GEE_SINUSOIDAL,
                     Affine(1000.0, 0, x0, 0, -1000.0, y1))
    _, grid, _ = read_band(path)
    left, _, _, top = grid.bounds
    (lon,), (lat,) = transform(grid.rio_crs, WGS84, [left], [top])
    assert lon == pytest.approx(lon0, abs=1e-6) and lat == pytest.approx(lat1, abs=1e-6)
    _, (literal_lat,) = transform(GEE_SINUSOIDAL, WGS84, [left], [top])
    assert abs(literal_lat - lat1) * 111e3 > 15e3


def test_write_geotiff_round_trip(tmp_path):
    grid = Grid.from_rasterio(UTM31N, Affine(30, 0, 406365, 0, -30, 5318535), 3, 4)
    values = np.arange(12, dtype=np.float32).reshape(3, 4) + 280
    values[0, 0] = np.nan
    write_geotiff(tmp_path / "L.tif", values, grid, units="K")
    with rasterio.open(tmp_path / "L.tif") as ds:
        assert ds.crs == UTM31N and ds.transform == grid.affine and ds.dtypes == ("float32",)
        assert math.isnan(ds.nodata) and ds.tags()["units"] == "K"
        np.testing.assert_array_equal(ds.read(1), values)
    assert [p.name for p in tmp_path.iterdir()] == ["L.tif"]  # the .part file was renamed
