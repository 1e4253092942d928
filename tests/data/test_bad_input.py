"""Bad input through the real command line: each case prints one message naming the file or value and the fix,
exits with status 2 without a traceback, and leaves nothing under the data dir."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import (FINE_SHAPE, FINE_TRANSFORM, GEE_SINUSOIDAL, KELVIN, UTM31N, coarse_c, coarse_transform,
                           dates, fine_c, make_raw, run_prepare, write_tif)

DAYS = dates(3)


def missing_folder(root):
    return root / "nowhere", ["dataset folder", "nowhere does not exist", "Set dataset.source.root"]


def no_matching_files(root):
    root.mkdir()
    (root / "notes.txt").write_text("exports will land here")
    write_tif(root / "scene_2020.tif", fine_c(0), UTM31N, FINE_TRANSFORM)
    return root, [f"{root}: no known layout found", "L_YYYYMMDD.tif", "dataset.source.fine_glob"]


def corrupt_geotiff(root):
    make_raw(root, DAYS)
    path = root / "Landsat" / f"LC08_199027_{DAYS[1]:%Y%m%d}.tif"
    path.write_bytes(path.read_bytes()[:3000])
    return root, [f"{path}: cannot be read as a GeoTIFF", "corrupt or truncated", "re-download or re-export"]


def footprints_apart(root):
    make_raw(root, DAYS)
    ct, cshape = coarse_transform()
    for k, day in enumerate(DAYS):  # MODIS Sinusoidal coordinates declared as UTM metres
        write_tif(root / "MODIS" / f"{day:%Y_%m_%d}.tif", coarse_c(k, cshape), UTM31N, ct, nodata=0.0)
    return root, [f"{root}/MODIS/{DAYS[0]:%Y_%m_%d}.tif do not overlap", "only 0% of the fine image",
                  "wrong CRS or transform", "re-export it with correct georeference"]


def all_no_data(root):
    make_raw(root, DAYS)
    path = root / "Landsat" / f"LC08_199027_{DAYS[2]:%Y%m%d}.tif"
    write_tif(path, np.zeros(FINE_SHAPE), UTM31N, FINE_TRANSFORM, nodata=0.0)
    return root, [f"{path}: the scene is all no-data", "dataset.source.exclude"]


def units_disagree(root):
    """Landsat in °C, MODIS in K, and the STF-LST config declaring both in °C."""
    make_raw(root, DAYS)
    ct, cshape = coarse_transform()
    for k, day in enumerate(DAYS):
        write_tif(root / "MODIS" / f"{day:%Y_%m_%d}.tif", coarse_c(k, cshape) + KELVIN, GEE_SINUSOIDAL, ct, 0.0)
    return root, [f"{root}/MODIS/{DAYS[0]:%Y_%m_%d}.tif: declared units C", "median valid value is 284.",
                  "dataset.source.fine_units / coarse_units"]


def no_paired_dates(root):
    make_raw(root, DAYS, skip_landsat=DAYS[1:], skip_modis=DAYS[:1])
    return root, [f"{root}: no date has both a fine and a coarse image", f"fine dates: {DAYS[0]}",
                  f"coarse dates: {DAYS[1]}, {DAYS[2]}", "dataset.source.date_regex"]


@pytest.mark.parametrize("case", [missing_folder, no_matching_files, corrupt_geotiff, footprints_apart, all_no_data,
                                  units_disagree, no_paired_dates], ids=lambda f: f.__name__)
def test_bad_input_fails_cleanly(tmp_path, case):
    root, expected = case(tmp_path / "input")
    dataset = "dataset=stf_lst" if case is units_disagree else "dataset=folder"
    result = run_prepare(dataset, f"dataset.source.root={root}", tmp=tmp_path)
    message = " ".join(result.stderr.replace("│", " ").split())  # the panel's text, unwrapped
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert "DataError" in message
    for fragment in expected:
        assert fragment in message
    data = tmp_path / "data"
    assert not data.exists() or list(data.rglob("*")) == []


def test_wrapped_and_missing_values_are_user_errors(capsys):
    """Hydra re-raises a constructor's error wrapped, and a ??? value is the user's to set: both print a message."""
    from hydra.errors import InstantiationException
    from omegaconf import OmegaConf

    from stf_bench.errors import ConfigError, exit_on_user_error

    @exit_on_user_error
    def wrapped():
        try:
            raise ConfigError("preprocess.fine_fill='x' in /data/[2024]/: use one of none, focal, temporal.")
        except ConfigError as exc:
            raise InstantiationException("Error in call to target") from exc

    @exit_on_user_error
    def missing():
        return OmegaConf.create({"dataset": {"source": {"root": "???"}}}).dataset.source.root

    for entry, fragment in ((wrapped, "/data/[2024]/: use one of none"),
                            (missing, "dataset.source.root is required but not set")):
        with pytest.raises(SystemExit) as exit_info:
            entry()
        assert exit_info.value.code == 2
        assert fragment in " ".join(capsys.readouterr().err.replace("│", " ").split())

    @exit_on_user_error
    def bug():
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        bug()


def test_a_data_folder_that_cannot_be_written_is_a_message(tmp_path):
    (tmp_path / "data").write_text("a file where the data folder should be")
    result = run_prepare(tmp=tmp_path)
    message = " ".join(result.stderr.replace("│", " ").split())
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert "DataError" in message and f"cannot write the dataset under {tmp_path / 'data'}/synthetic_small" in message
    assert "paths.data_dir=<a writable folder>" in message
    assert (tmp_path / "data").read_text() == "a file where the data folder should be"
