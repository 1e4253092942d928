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


def duplicate_date(root):
    """A re-export of one Landsat date 15 K warmer beside the first export."""
    make_raw(root, DAYS)
    first = root / "Landsat" / f"LC08_199027_{DAYS[1]:%Y%m%d}.tif"
    write_tif(first.with_suffix(".tiff"), fine_c(1) + 15.0, UTM31N, FINE_TRANSFORM, nodata=0.0)
    return root, [f"two different fine files for {DAYS[1]}: {first} and {first.with_suffix('.tiff')}",
                  "median difference +15", "dataset.source.duplicates=first", "dataset.source.duplicates=mean"]


@pytest.mark.parametrize("case", [missing_folder, no_matching_files, corrupt_geotiff, footprints_apart, all_no_data,
                                  units_disagree, no_paired_dates, duplicate_date], ids=lambda f: f.__name__)
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


def test_non_numeric_split_and_pairing_values():
    from stf_bench.data.samples import ChronologicalSplit, LeaveYearOutSplit, Pairing, RandomSplit, SeasonalSplit
    from stf_bench.errors import ConfigError

    cases = [
        (lambda: ChronologicalSplit("chronological", val_fraction="abc"),
         r"split\.val_fraction='abc' is not a fraction"),
        (lambda: RandomSplit("random", test_fraction=1.5), r"split\.test_fraction=1\.5 is not a fraction"),
        (lambda: RandomSplit("random", seed="x"), r"split\.seed='x' is not a whole number: set it like split\.seed=0"),
        (lambda: SeasonalSplit("seasonal", val_fraction="0,2"),
         r"split\.val_fraction='0,2'.*split\.val_fraction=0\.15"),
        (lambda: LeaveYearOutSplit("leave_year_out", test_year="last"),
         r"split\.test_year='last' is not a whole number"),
        (lambda: Pairing("previous", max_gap_days="abc"), r"pairing\.max_gap_days='abc' is not a number >= 0"),
    ]
    for make, message in cases:
        with pytest.raises(ConfigError, match=message):
            make()


def test_a_key_the_section_does_not_take_names_where_it_lives(capsys):
    """`+datamodule.val_fraction=abc` (Hydra's own hint for a key it does not know) reaches the data module as an
    unexpected keyword: the message names the key and the real one, split.val_fraction."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from stf_bench.errors import exit_on_user_error

    @exit_on_user_error
    def main(cfg):
        instantiate(cfg.datamodule)

    cfg = OmegaConf.create({"split": {"val_fraction": 0.15},
                            "datamodule": {"_target_": "stf_bench.data.samples.Pairing", "name": "previous",
                                           "val_fraction": "abc"}})
    with pytest.raises(SystemExit) as exit_info:
        main(cfg)
    message = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert exit_info.value.code == 2
    assert "datamodule.val_fraction is not a setting of stf_bench.data.samples.Pairing" in message
    assert "The key val_fraction is split.val_fraction: set it there (e.g. split.val_fraction=<value>)" in message
