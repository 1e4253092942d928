"""Scenes from a folder of real MODIS/Landsat GeoTIFFs in any of the STF-LST layouts.

Layouts (stf_lst_recipe.md):
- ``raw``: ``Landsat/LC08_<PPPRRR>_<YYYYMMDD>.tif`` + ``MODIS/<YYYY_MM_DD>.tif`` (1 km MODIS Sinusoidal);
- ``paired``: ``L_YYYYMMDD.tif`` + ``M_YYYYMMDD.tif``;
- ``glob``: one glob per sensor and a date regex/format found in the file name.
Files are paired by date (never by position), several Landsat path/rows of one date are mosaicked, unpaired dates
are listed and skipped, values are converted to Kelvin with NaN no-data.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.merge import merge
from tqdm.auto import tqdm

from stf_bench.data.geotiff import modis_sphere_crs, read_band
from stf_bench.data.scene import Grid, Scene
from stf_bench.data.units import check_sensors_agree, to_kelvin
from stf_bench.errors import DataError

log = logging.getLogger(__name__)

RAW_LANDSAT = re.compile(r"^L[CO]0[89]_(\d{6})_(\d{8})\.tiff?$", re.IGNORECASE)
RAW_MODIS = re.compile(r"^(\d{4}_\d{2}_\d{2})\.tiff?$", re.IGNORECASE)
PAIRED = re.compile(r"^([LM])_(\d{8})\.tiff?$", re.IGNORECASE)


class FolderSource:
    """Read a folder of GeoTIFF pairs into Kelvin Scenes on each sensor's own grid."""

    def __init__(
        self,
        root: str | Path,
        layout: str = "auto",
        fine_glob: str | None = None,
        coarse_glob: str | None = None,
        date_regex: str = r"(\d{8})",
        date_format: str = "%Y%m%d",
        fine_units: str = "auto",
        coarse_units: str = "auto",
        fine_nodata: float | None = None,
        coarse_nodata: float | None = None,
        fine_band: int = 1,
        coarse_band: int = 1,
        exclude: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.root = Path(root).expanduser()
        self.layout = layout
        self.fine_glob, self.coarse_glob = fine_glob, coarse_glob
        self.date_regex, self.date_format = re.compile(date_regex), date_format
        self.units = {"fine": fine_units, "coarse": coarse_units}
        self.nodata = {"fine": fine_nodata, "coarse": coarse_nodata}
        self.band = {"fine": int(fine_band), "coarse": int(coarse_band)}
        self.exclude = {_parse_date(str(d), "%Y-%m-%d", "dataset.source.exclude") for d in exclude}

    # -- discovery -------------------------------------------------------------------------------------------------
    def resolve_layout(self) -> str:
        if not self.root.is_dir():
            raise DataError(
                f"dataset folder {self.root} does not exist (or is not a folder). Set dataset.source.root to the "
                f"folder holding your GeoTIFFs (absolute path, or relative to where you run the command)."
            )
        if self.layout != "auto":
            if self.layout not in ("raw", "paired", "glob"):
                raise DataError(f"dataset.source.layout={self.layout!r} is not one of auto, raw, paired, glob.")
            return self.layout
        if self.fine_glob and self.coarse_glob:
            return "glob"
        if (self.root / "Landsat").is_dir() and (self.root / "MODIS").is_dir():
            return "raw"
        if any(PAIRED.match(p.name) for p in self.root.iterdir()):
            return "paired"
        raise DataError(
            f"{self.root}: no known layout found. Expected Landsat/ and MODIS/ sub-folders (raw Earth Engine "
            f"exports), L_YYYYMMDD.tif / M_YYYYMMDD.tif pairs, or set dataset.source.fine_glob and "
            f"dataset.source.coarse_glob (with dataset.source.date_regex) for other names."
        )

    def discover(self) -> dict[str, dict[dt.date, list[Path]]]:
        """Files per sensor and date."""
        layout = self.resolve_layout()
        files: dict[str, dict[dt.date, list[Path]]] = {"fine": defaultdict(list), "coarse": defaultdict(list)}
        if layout == "raw":
            for p in sorted((self.root / "Landsat").glob("*")):  # a missing sub-folder yields no file
                if m := RAW_LANDSAT.match(p.name):
                    files["fine"][_parse_date(m.group(2), "%Y%m%d", p)].append(p)
            for p in sorted((self.root / "MODIS").glob("*")):
                if m := RAW_MODIS.match(p.name):
                    files["coarse"][_parse_date(m.group(1), "%Y_%m_%d", p)].append(p)
            searched = f"{self.root}/Landsat/LC08_<PPPRRR>_<YYYYMMDD>.tif and {self.root}/MODIS/<YYYY_MM_DD>.tif"
        elif layout == "paired":
            for p in sorted(self.root.iterdir()):
                if m := PAIRED.match(p.name):
                    sensor = "fine" if m.group(1).upper() == "L" else "coarse"
                    files[sensor][_parse_date(m.group(2), "%Y%m%d", p)].append(p)
            searched = f"{self.root}/L_YYYYMMDD.tif and {self.root}/M_YYYYMMDD.tif"
        else:
            if not (self.fine_glob and self.coarse_glob):
                raise DataError("layout=glob needs both dataset.source.fine_glob and dataset.source.coarse_glob.")
            for sensor, pattern in (("fine", self.fine_glob), ("coarse", self.coarse_glob)):
                for p in sorted(self.root.glob(pattern)):
                    m = self.date_regex.search(p.name)
                    if m is None:
                        raise DataError(
                            f"{p}: matches {pattern!r} but no date matches dataset.source.date_regex="
                            f"{self.date_regex.pattern!r}. Adjust the regex (its first group is the date)."
                        )
                    files[sensor][_parse_date(m.group(1), self.date_format, p)].append(p)
            searched = f"{self.root}/{self.fine_glob} and {self.root}/{self.coarse_glob}"
        for sensor in files:
            if not files[sensor]:
                raise DataError(
                    f"no {'Landsat (fine)' if sensor == 'fine' else 'MODIS (coarse)'} files found: searched "
                    f"{searched}. Check dataset.source.root and the file names (or set layout/globs explicitly)."
                )
        return files

    # -- reading ---------------------------------------------------------------------------------------------------
    def load(self, workdir: Path | None = None) -> list[Scene]:
        files = self.discover()
        fine_dates, coarse_dates = set(files["fine"]), set(files["coarse"])
        paired = sorted((fine_dates & coarse_dates) - self.exclude)
        unpaired = sorted((fine_dates ^ coarse_dates) - self.exclude)
        if unpaired:
            only = [f"{d.isoformat()} ({'fine' if d in fine_dates else 'coarse'} only)" for d in unpaired]
            log.warning("%d unpaired date(s) skipped: %s", len(unpaired), ", ".join(only))
        if not paired:
            raise DataError(
                f"{self.root}: no date has both a fine and a coarse image (fine dates: "
                f"{_fmt_dates(fine_dates)}; coarse dates: {_fmt_dates(coarse_dates)}). Pairs are made by the date "
                f"in the file names: check the names or dataset.source.date_regex/date_format."
            )
        scenes = []
        for date in tqdm(paired, desc=f"reading {self.root.name}", unit="date"):
            fine, fine_grid, fine_path = self._read(files["fine"][date], "fine")
            coarse, coarse_grid, coarse_path = self._read(files["coarse"][date], "coarse")
            check_sensors_agree(fine, coarse, fine_path, coarse_path)
            if coarse.shape == fine.shape and coarse_grid != fine_grid and coarse_grid.res != fine_grid.res:
                # the STF-LST scripts resized MODIS to the Landsat array but kept the 1 km georeference
                log.warning("%s has the fine array shape but a %s m pixel size: taken as resized onto the fine grid "
                            "with a stale georeference (the STF-LST scripts' defect)", coarse_path.name,
                            f"{coarse_grid.res[0]:g}")
                coarse_grid = fine_grid
            scenes.append(Scene(date, fine, fine_grid, coarse, coarse_grid, str(fine_path), str(coarse_path)))
        return scenes

    def _read(self, paths: list[Path], sensor: str) -> tuple[np.ndarray, Grid, Path]:
        if len(paths) == 1:
            data, grid, _ = read_band(paths[0], self.band[sensor], self.nodata[sensor])
        else:
            data, grid = self._mosaic(paths, sensor)
        return to_kelvin(data, self.units[sensor], paths[0]), grid, paths[0]

    def _mosaic(self, paths: list[Path], sensor: str) -> tuple[np.ndarray, Grid]:
        """Several path/rows on one date: merge onto their union grid, first valid value wins."""
        try:
            datasets = [rasterio.open(p) for p in paths]
        except RasterioError as exc:
            raise DataError(f"{paths}: one of these files cannot be read ({exc}); re-export it or remove it.") from exc
        try:
            crss = {ds.crs.to_wkt() for ds in datasets}
            if len(crss) > 1:
                raise DataError(
                    f"cannot mosaic {', '.join(map(str, paths))}: they are in different projections. Export all "
                    f"path/rows of a date in one CRS."
                )
            nodata = self.nodata[sensor] if self.nodata[sensor] is not None else datasets[0].nodata
            nodata = np.nan if nodata is None else nodata
            data, transform = merge(datasets, indexes=[self.band[sensor]], nodata=nodata, method="first")
            crs, _ = modis_sphere_crs(datasets[0].crs)
        finally:
            for ds in datasets:
                ds.close()
        data = data[0].astype(np.float32)
        data[~np.isfinite(data) | (data == np.float32(nodata))] = np.nan
        log.info("mosaicked %d files for %s", len(paths), paths[0].name)
        return data, Grid.from_rasterio(crs, transform, *data.shape)

    def fingerprint(self) -> dict:
        """Everything that identifies the input: settings plus each file's name, size and modification time."""
        files = self.discover()
        stats = sorted(
            (p.relative_to(self.root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for by_date in files.values() for ps in by_date.values() for p in ps
        )
        return {
            "root": str(self.root.resolve()),
            "units": self.units,
            "nodata": {k: (None if v is None else float(v)) for k, v in self.nodata.items()},
            "band": self.band,
            "exclude": sorted(d.isoformat() for d in self.exclude),
            "files": stats,
        }


def _parse_date(text: str, fmt: str, where) -> dt.date:
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError as exc:
        raise DataError(f"{where}: {text!r} is not a date in the format {fmt!r}.") from exc


def _fmt_dates(dates) -> str:
    dates = sorted(dates)
    shown = ", ".join(d.isoformat() for d in dates[:5])
    return shown + (f", ... ({len(dates)} in all)" if len(dates) > 5 else "") if dates else "none"
