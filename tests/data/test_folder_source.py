"""The folder source on real (tiny) GeoTIFFs in each layout: pairing by date, mosaics, units, no-data, bands."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from affine import Affine
from data_fixtures import (FINE_SHAPE, FINE_TRANSFORM, GEE_SINUSOIDAL, KELVIN, UTM31N, base_c, coarse_c,
                           coarse_transform, dates, fine_c, fine_gap, make_glob, make_paired, make_raw, write_tif)

from stf_bench.data.geotiff import MODIS_SINUSOIDAL
from stf_bench.data.scene import Grid
from stf_bench.data.sources.folder import FolderSource
from stf_bench.errors import ConfigError, DataError

FINE_GRID = Grid.from_rasterio(UTM31N, FINE_TRANSFORM, *FINE_SHAPE)


def stf_lst_source(root, **kwargs):
    """Raw STF-LST exports: °C with 0 = no data."""
    return FolderSource(root, **{"fine_units": "C", "coarse_units": "C", "fine_nodata": 0, "coarse_nodata": 0,
                                 **kwargs})


def expected_fine_k(k):
    fine = fine_c(k) + np.float32(KELVIN)
    fine[fine_gap(k)] = np.nan
    return fine


def test_raw_layout_pairs_by_date_and_lists_unpaired(tmp_path, caplog):
    days = dates(5)
    root = make_raw(tmp_path, days, skip_landsat=[days[2]], skip_modis=[days[4]])
    source = FolderSource(root)  # layout, units and no-data (tag 0) all found by themselves
    assert source.resolve_layout() == "raw"
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.sources.folder"):
        scenes = source.load()
    assert [s.date for s in scenes] == [days[0], days[1], days[3]]
    assert f"{days[2].isoformat()} (coarse only)" in caplog.text
    assert f"{days[4].isoformat()} (fine only)" in caplog.text
    ct, cshape = coarse_transform()
    cgrid = Grid.from_rasterio(MODIS_SINUSOIDAL, ct, *cshape)
    for scene, k in zip(scenes, (0, 1, 3)):  # the date after the missing file keeps its own values
        np.testing.assert_allclose(scene.fine, expected_fine_k(k), atol=1e-4)
        np.testing.assert_array_equal(scene.fine_valid, np.isfinite(expected_fine_k(k)))
        coarse = coarse_c(k, cgrid.shape) + np.float32(KELVIN)
        coarse[2, 2] = np.nan if k == 0 else coarse[2, 2]
        np.testing.assert_allclose(scene.coarse, coarse, atol=1e-4)
        assert scene.fine_grid == FINE_GRID and scene.coarse_grid == cgrid  # MODIS re-declared on the sphere
        assert scene.fine_source.endswith(f"LC08_199027_{scene.key}.tif")
        assert scene.coarse_source.endswith(f"{scene.date:%Y_%m_%d}.tif")
    assert not scenes[0].coarse_valid[2, 2] and scenes[1].coarse_valid.all()


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # inside rasterio.merge
def test_two_path_rows_on_one_date_are_mosaicked(tmp_path):
    day = dates(1)[0]
    west = np.full((66, 40), 20.0)
    west[:, 30:] = 0.0  # no data (untagged, declared) on the east side of the western path/row
    east = np.full((66, 40), 25.0)
    write_tif(tmp_path / "Landsat" / f"LC08_199027_{day:%Y%m%d}.tif", west, UTM31N, FINE_TRANSFORM)
    write_tif(tmp_path / "Landsat" / f"LC08_199028_{day:%Y%m%d}.tif", east, UTM31N,
              FINE_TRANSFORM @ Affine.translation(26, 0))
    ct, cshape = coarse_transform()
    write_tif(tmp_path / "MODIS" / f"{day:%Y_%m_%d}.tif", coarse_c(7, cshape), GEE_SINUSOIDAL, ct)
    (scene,) = stf_lst_source(tmp_path).load()
    assert scene.fine_grid == FINE_GRID  # the union of both footprints
    # West first (it sorts first) where it has data, east everywhere else, overlap included.
    expected = np.where(np.arange(66) < 30, 20.0, 25.0) + KELVIN
    np.testing.assert_allclose(scene.fine, np.broadcast_to(expected, FINE_SHAPE), atol=1e-4)


def test_paired_layout_in_kelvin(tmp_path):
    days = dates(2)
    source = FolderSource(make_paired(tmp_path, days))
    assert source.resolve_layout() == "paired"
    scenes = source.load()
    assert [s.date for s in scenes] == days
    np.testing.assert_allclose(scenes[1].fine, fine_c(1) + KELVIN, atol=1e-4)
    assert scenes[1].coarse_grid.rio_crs == MODIS_SINUSOIDAL


def test_glob_layout_with_date_regex_and_nodata_tag(tmp_path):
    days = dates(2)
    root = make_glob(tmp_path, days)
    write_tif(root / "Landsat_QA_20200101.tif", np.zeros(FINE_SHAPE), UTM31N, FINE_TRANSFORM)  # not the glob
    source = FolderSource(root, layout="glob", fine_glob="Landsat_LST_*_*.tif", coarse_glob="MOD11A1_LST_*_*.tif",
                          fine_units="K", coarse_units="K")
    scenes = source.load()
    assert [s.date for s in scenes] == days
    assert np.isnan(scenes[0].fine[0, 0]) and np.isfinite(scenes[0].fine).sum() == 66 * 66 - 1  # -3.4e38 tag
    np.testing.assert_allclose(scenes[1].fine[1:, 1:], (fine_c(1) + KELVIN)[1:, 1:], atol=1e-4)
    np.testing.assert_allclose(scenes[1].coarse, base_c(1) + 1.0 + KELVIN, atol=1e-4)
    (root / "Landsat_LST_cloudrm_undated.tif").write_bytes(b"")
    with pytest.raises(DataError, match=r"Landsat_LST_cloudrm_undated\.tif: matches .* no date matches"):
        source.load()


def test_units_detected_per_file_and_declared(tmp_path):
    days = dates(2)
    make_raw(tmp_path, days, gaps=False)
    ct, cshape = coarse_transform()
    write_tif(tmp_path / "MODIS" / f"{days[1]:%Y_%m_%d}.tif", coarse_c(1, cshape) + KELVIN, GEE_SINUSOIDAL, ct)
    scenes = FolderSource(tmp_path).load()  # date 1: Landsat in °C, MODIS in K, both detected
    np.testing.assert_allclose(scenes[1].coarse, coarse_c(1, cshape) + KELVIN, atol=1e-4)
    np.testing.assert_allclose(scenes[1].fine, fine_c(1) + KELVIN, atol=1e-4)
    with pytest.raises(DataError, match=rf"{days[1]:%Y_%m_%d}\.tif: declared units C .* 2[89]\d\.\d"):
        FolderSource(tmp_path, coarse_units="C").load()


def test_declared_nodata_replaces_a_missing_tag(tmp_path):
    days = dates(1)
    make_raw(tmp_path, days, tag_nodata=False)
    gap = fine_gap(0)
    scene = FolderSource(tmp_path, fine_units="C", coarse_units="C").load()[0]
    np.testing.assert_allclose(scene.fine[gap], KELVIN, atol=1e-4)  # untagged 0 °C is a value
    scene = stf_lst_source(tmp_path).load()[0]
    assert np.isnan(scene.fine[gap]).all() and np.isfinite(scene.fine).sum() == scene.fine.size - 9 * 12


def test_band_index(tmp_path):
    days = dates(1)
    make_raw(tmp_path, days, gaps=False)
    qa = np.full(FINE_SHAPE, 21824.0)
    write_tif(tmp_path / "Landsat" / f"LC08_199027_{days[0]:%Y%m%d}.tif", np.stack([qa, fine_c(0)]), UTM31N,
              FINE_TRANSFORM)
    scene = stf_lst_source(tmp_path, fine_band=2).load()[0]
    np.testing.assert_allclose(scene.fine, fine_c(0) + KELVIN, atol=1e-4)
    with pytest.raises(DataError, match=r"band 3 requested but the file has 2 band"):
        stf_lst_source(tmp_path, fine_band=3).load()


def test_exclude_and_fingerprint(tmp_path):
    days = dates(3)
    make_raw(tmp_path, days)
    source = stf_lst_source(tmp_path, exclude=[days[1].isoformat()])
    assert [s.date for s in source.load()] == [days[0], days[2]]
    before = source.fingerprint()
    assert before == stf_lst_source(tmp_path, exclude=[days[1].isoformat()]).fingerprint()
    assert before != stf_lst_source(tmp_path).fingerprint()
    write_tif(tmp_path / "MODIS" / "2030_01_01.tif", np.ones((2, 2)), GEE_SINUSOIDAL, coarse_transform()[0])
    assert source.fingerprint() != before  # a new file is new input


def test_missing_sub_folder_is_named(tmp_path):
    make_raw(tmp_path / "raw", dates(1), skip_modis=dates(1))
    with pytest.raises(DataError, match=r"no MODIS \(coarse\) files found: searched .*MODIS/<YYYY_MM_DD>\.tif "
                                        r"\(.*raw/MODIS/ does not exist\)"):
        FolderSource(tmp_path / "raw", layout="raw").load()
    with pytest.raises(DataError, match=r"raw: found the folder Landsat/ but no MODIS/ folder.*put the MODIS files "
                                        r"in .*raw/MODIS/"):
        FolderSource(tmp_path / "raw").load()
    make_raw(tmp_path / "modis_only", dates(1), skip_landsat=dates(1))
    with pytest.raises(DataError, match=r"modis_only: found the folder MODIS/ but no Landsat/ folder"):
        FolderSource(tmp_path / "modis_only").load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no known layout found"):
        FolderSource(tmp_path / "empty").load()
    with pytest.raises(DataError, match=r"nowhere does not exist.*dataset\.source\.root"):
        FolderSource(tmp_path / "nowhere").load()


def test_two_different_files_for_one_date_are_refused_unless_told(tmp_path, caplog):
    days = dates(2)
    make_paired(tmp_path, days)
    reexport = fine_c(1) + KELVIN + 15.0  # the same date exported again, 15 K warmer, with a cloud
    reexport[:10] = np.nan
    write_tif(tmp_path / f"L_{days[1]:%Y%m%d}.tiff", reexport, UTM31N, FINE_TRANSFORM)
    first, second = tmp_path / f"L_{days[1]:%Y%m%d}.tif", tmp_path / f"L_{days[1]:%Y%m%d}.tiff"
    with pytest.raises(DataError, match=rf"two different fine files for {days[1]}: {first} and {second} \(median "
                                        rf"difference \+15 .*dataset\.source\.duplicates=first .*=mean"):
        FolderSource(tmp_path).load()
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.sources.folder"):
        scenes = FolderSource(tmp_path, duplicates="first").load()
    np.testing.assert_allclose(scenes[1].fine, fine_c(1) + KELVIN, atol=1e-4)
    assert f"L_{days[1]:%Y%m%d}.tiff) ignored" in caplog.text
    scenes = FolderSource(tmp_path, duplicates="mean").load()
    np.testing.assert_allclose(scenes[1].fine[10:], fine_c(1)[10:] + KELVIN + 7.5, atol=1e-4)  # both valid
    np.testing.assert_allclose(scenes[1].fine[:10], fine_c(1)[:10] + KELVIN, atol=1e-4)  # only the first
    np.testing.assert_allclose(scenes[0].fine, fine_c(0) + KELVIN, atol=1e-4)  # a single file stays as it is
    with pytest.raises(ConfigError, match=r"dataset\.source\.duplicates='last': use one of error, first, mean"):
        FolderSource(tmp_path, duplicates="last")


def test_identical_duplicates_pass_and_a_raw_path_row_reexport_is_a_duplicate(tmp_path):
    days = dates(1)
    make_raw(tmp_path, days)
    landsat = tmp_path / "Landsat" / f"LC08_199027_{days[0]:%Y%m%d}.tif"
    copy = landsat.with_suffix(".tiff")
    copy.write_bytes(landsat.read_bytes())
    (scene,) = stf_lst_source(tmp_path).load()  # the same values twice: not a mosaic, not a conflict
    np.testing.assert_allclose(scene.fine, expected_fine_k(0), atol=1e-4)
    write_tif(copy, fine_c(0) + 1.0, UTM31N, FINE_TRANSFORM)
    with pytest.raises(DataError, match=rf"two different fine files for {days[0]}: {landsat} and {copy}"):
        stf_lst_source(tmp_path).load()


def test_implausible_values_are_counted_and_warned_about(tmp_path, caplog):
    days = dates(2)
    make_paired(tmp_path, days)
    fine = fine_c(1) + KELVIN
    fine[:10] = 9999.0  # an undeclared fill value on 10 of 66 rows: 15 %
    fine[20, 20] = 1000.0
    write_tif(tmp_path / f"L_{days[1]:%Y%m%d}.tif", fine, UTM31N, FINE_TRANSFORM)
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.sources.folder"):
        scenes = FolderSource(tmp_path).load()
    assert scenes[0].implausible == {"fine": 0, "coarse": 0, "fine_fraction": 0.0, "coarse_fraction": 0.0}
    n = 10 * 66 + 1
    assert scenes[1].implausible["fine"] == n and scenes[1].implausible["coarse"] == 0
    assert scenes[1].implausible["fine_fraction"] == pytest.approx(n / 66**2)
    assert np.isnan(scenes[1].fine[:10]).all() and np.isfinite(scenes[1].fine[10:]).sum() == 56 * 66 - 1
    assert f"L_{days[1]:%Y%m%d}.tif: {n} pixels (15.2 %)" in caplog.text
    assert "most often 9999" in caplog.text and "dataset.source.fine_nodata=9999" in caplog.text
    assert f"L_{days[0]:%Y%m%d}" not in caplog.text


def test_broken_symlink_is_skipped_with_a_warning(tmp_path, caplog):
    days = dates(2)
    make_paired(tmp_path, days)
    link = tmp_path / "L_20300101.tif"
    link.symlink_to(tmp_path / "moved_away.tif")
    source = FolderSource(tmp_path)
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.sources.folder"):
        fingerprint = source.fingerprint()
        scenes = source.load()
    assert [s.date for s in scenes] == days
    assert all(name != "L_20300101.tif" for name, *_ in fingerprint["files"])
    assert caplog.text.count(f"{link}: broken symbolic link (its target {tmp_path / 'moved_away.tif'}") == 1


def test_band_values_name_the_key(tmp_path):
    make_raw(tmp_path, dates(1))
    with pytest.raises(ConfigError, match=r"dataset\.source\.fine_band='abc' is not a band number.*"
                                          r"dataset\.source\.fine_band=1"):
        FolderSource(tmp_path, fine_band="abc")
    with pytest.raises(ConfigError, match=r"dataset\.source\.coarse_band=0 is not a band number"):
        FolderSource(tmp_path, coarse_band=0)
    with pytest.raises(DataError, match=r"MODIS/.*\.tif: band 2 requested but the file has 1 band\(s\) "
                                        r"\(dataset\.source\.coarse_band=2\)\. Set dataset\.source\.coarse_band to .* "
                                        r"from 1 to 1"):
        stf_lst_source(tmp_path, coarse_band=2).load()


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
def test_band_beyond_the_count_in_a_mosaic(tmp_path):
    day = dates(1)[0]
    for pathrow, shift in (("199027", 0), ("199028", 26)):
        write_tif(tmp_path / "Landsat" / f"LC08_{pathrow}_{day:%Y%m%d}.tif", np.full((66, 40), 20.0), UTM31N,
                  FINE_TRANSFORM @ Affine.translation(shift, 0))
    ct, cshape = coarse_transform()
    write_tif(tmp_path / "MODIS" / f"{day:%Y_%m_%d}.tif", coarse_c(0, cshape), GEE_SINUSOIDAL, ct)
    with pytest.raises(DataError, match=r"LC08_199027_\d+\.tif: band 2 requested but the file has 1 band"):
        stf_lst_source(tmp_path, fine_band=2).load()


def test_implausible_count_reaches_the_manifest_and_the_prepare_table(tmp_path):
    from data_fixtures import compose
    from rich.console import Console

    from stf_bench.data.report import summary_table
    from stf_bench.data.store import build_dataset

    days = dates(3)
    make_paired(tmp_path / "in", days)
    fine = fine_c(2) + KELVIN
    fine[:10] = 9999.0
    write_tif(tmp_path / "in" / f"L_{days[2]:%Y%m%d}.tif", fine, UTM31N, FINE_TRANSFORM)
    cfg = compose("dataset=folder", f"dataset.source.root={tmp_path / 'in'}", "preprocess=nofill")
    store, _ = build_dataset(cfg.dataset, cfg.preprocess, tmp_path / "data")
    counts = [d["implausible"]["fine"] for d in store.manifest["dates"]]
    assert counts == [0, 0, 660] and store.manifest["dates"][2]["implausible"]["coarse"] == 0
    table = summary_table(store.manifest, store.path, False)
    assert [cell.style for cell in table.columns[-2]._cells] == ["", "", "bold red"]  # the warning above 1 %
    console = Console(record=True, width=200)
    console.print(table)
    rows = [line for line in console.export_text().splitlines() if line.lstrip("│ ").startswith("2020-")]
    assert [r.replace("│", " ").split()[-2:] for r in rows[:2]] == [["0", "0"], ["0", "0"]]
    assert rows[2].replace("│", " ").split()[-4:] == ["660", "(15.2", "%)", "0"]  # fine above 1 %, coarse clean
