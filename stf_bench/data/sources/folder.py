"""Scenes from a folder of real MODIS/Landsat GeoTIFFs in any of the STF-LST layouts.

Layouts (stf_lst_recipe.md):
- ``raw``: ``Landsat/LC08_<PPPRRR>_<YYYYMMDD>.tif`` + ``MODIS/<YYYY_MM_DD>.tif`` (1 km MODIS Sinusoidal);
- ``paired``: ``L_YYYYMMDD.tif`` + ``M_YYYYMMDD.tif``;
- ``glob``: one glob per sensor and a date regex/format found in the file name.
Files are paired by date (never by position), several Landsat path/rows of one date are mosaicked, unpaired dates
are listed and skipped, values are converted to Kelvin with NaN no-data. Two different files for one date and tile
are refused unless `duplicates` says how to combine them; values outside the plausible LST range are dropped and
counted (the prepare table shows the count, a warning above 1 %).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from affine import Affine
from tqdm.auto import tqdm

from stf_bench.data.geotiff import read_band
from stf_bench.data.regrid import warp
from stf_bench.data.scene import Grid, Scene
from stf_bench.data.units import IMPLAUSIBLE_WARN, PLAUSIBLE_K, check_sensors_agree, to_kelvin
from stf_bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RAW_LANDSAT = re.compile(r"^L[CO]0[89]_(\d{6})_(\d{8})\.tiff?$", re.IGNORECASE)
RAW_MODIS = re.compile(r"^(\d{4}_\d{2}_\d{2})\.tiff?$", re.IGNORECASE)
PAIRED = re.compile(r"^([LM])_(\d{8})\.tiff?$", re.IGNORECASE)
DUPLICATES = ("error", "first", "mean")


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
        duplicates: str = "error",
    ) -> None:
        self.root = Path(root).expanduser()
        self.layout = layout
        self.fine_glob, self.coarse_glob = fine_glob, coarse_glob
        self.date_regex, self.date_format = re.compile(date_regex), date_format
        self.units = {"fine": fine_units, "coarse": coarse_units}
        self.nodata = {"fine": fine_nodata, "coarse": coarse_nodata}
        self.band = {"fine": _band_index(fine_band, "fine_band"), "coarse": _band_index(coarse_band, "coarse_band")}
        self.exclude = {_parse_date(str(d), "%Y-%m-%d", "dataset.source.exclude") for d in exclude}
        if duplicates not in DUPLICATES:
            raise ConfigError(f"dataset.source.duplicates={duplicates!r}: use one of {', '.join(DUPLICATES)} (what to "
                              f"do with two different files for one date).")
        self.duplicates = duplicates
        self._skipped_links: set[Path] = set()

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
        for have, missing in (("Landsat", "MODIS"), ("MODIS", "Landsat")):
            if (self.root / have).is_dir():
                raise DataError(
                    f"{self.root}: found the folder {have}/ but no {missing}/ folder beside it. Raw Earth Engine "
                    f"exports need both Landsat/ (LC08_<PPPRRR>_<YYYYMMDD>.tif) and MODIS/ (<YYYY_MM_DD>.tif): put "
                    f"the {missing} files in {self.root / missing}/ (the name is case-sensitive)."
                )
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
            for p in self._existing((self.root / "Landsat").glob("*")):  # a missing sub-folder yields no file
                if m := RAW_LANDSAT.match(p.name):
                    files["fine"][_parse_date(m.group(2), "%Y%m%d", p)].append(p)
            for p in self._existing((self.root / "MODIS").glob("*")):
                if m := RAW_MODIS.match(p.name):
                    files["coarse"][_parse_date(m.group(1), "%Y_%m_%d", p)].append(p)
            searched = f"{self.root}/Landsat/LC08_<PPPRRR>_<YYYYMMDD>.tif and {self.root}/MODIS/<YYYY_MM_DD>.tif"
        elif layout == "paired":
            for p in self._existing(self.root.iterdir()):
                if m := PAIRED.match(p.name):
                    sensor = "fine" if m.group(1).upper() == "L" else "coarse"
                    files[sensor][_parse_date(m.group(2), "%Y%m%d", p)].append(p)
            searched = f"{self.root}/L_YYYYMMDD.tif and {self.root}/M_YYYYMMDD.tif"
        else:
            if not (self.fine_glob and self.coarse_glob):
                raise DataError("layout=glob needs both dataset.source.fine_glob and dataset.source.coarse_glob.")
            for sensor, pattern in (("fine", self.fine_glob), ("coarse", self.coarse_glob)):
                for p in self._existing(self.root.glob(pattern)):
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
                folder = self.root / ("Landsat" if sensor == "fine" else "MODIS")
                gone = f" ({folder}/ does not exist)" if layout == "raw" and not folder.is_dir() else ""
                raise DataError(
                    f"no {'Landsat (fine)' if sensor == 'fine' else 'MODIS (coarse)'} files found: searched "
                    f"{searched}{gone}. Check dataset.source.root and the file names (or set layout/globs explicitly)."
                )
        return files

    def _existing(self, paths) -> list[Path]:
        """`paths` sorted, without broken symbolic links (each named in a warning once)."""
        kept = []
        for p in sorted(paths):
            if p.exists():
                kept.append(p)
            elif p not in self._skipped_links:
                self._skipped_links.add(p)
                target = os.readlink(p) if p.is_symlink() else "?"
                log.warning("%s: broken symbolic link (its target %s does not exist): skipped", p, target)
        return kept

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
            fine, fine_grid, fine_path, fine_bad = self._read(files["fine"][date], "fine", date)
            coarse, coarse_grid, coarse_path, coarse_bad = self._read(files["coarse"][date], "coarse", date)
            check_sensors_agree(fine, coarse, fine_path, coarse_path)
            if coarse.shape == fine.shape and coarse_grid != fine_grid and coarse_grid.res != fine_grid.res:
                # the STF-LST scripts resized MODIS to the Landsat array but kept the 1 km georeference
                log.warning("%s has the fine array shape but a %s m pixel size: taken as resized onto the fine grid "
                            "with a stale georeference (the STF-LST scripts' defect)", coarse_path.name,
                            f"{coarse_grid.res[0]:g}")
                coarse_grid = fine_grid
            implausible = {"fine": fine_bad, "coarse": coarse_bad, "fine_fraction": fine_bad / fine.size,
                           "coarse_fraction": coarse_bad / coarse.size}
            scenes.append(Scene(date, fine, fine_grid, coarse, coarse_grid, str(fine_path), str(coarse_path),
                                implausible=implausible))
        return scenes

    def _read(self, paths: list[Path], sensor: str, date: dt.date) -> tuple[np.ndarray, Grid, Path, int]:
        """One date of one sensor in Kelvin: its tiles (raw Landsat path/rows) mosaicked, each tile's duplicates
        resolved. Also returns the number of values dropped as implausible."""
        tiles: dict[str, list[Path]] = defaultdict(list)
        for p in paths:
            m = RAW_LANDSAT.match(p.name)
            tiles[m.group(1) if m else ""].append(p)
        parts = [self._tile(group, sensor, date) for group in tiles.values()]
        data, grid = parts[0] if len(parts) == 1 else _mosaic(parts, paths)
        finite = int(np.isfinite(data).sum())
        kelvin = to_kelvin(data, self.units[sensor], paths[0])
        dropped = finite - int(np.isfinite(kelvin).sum())
        if dropped > IMPLAUSIBLE_WARN * data.size:
            values, counts = np.unique(data[np.isfinite(data) & ~np.isfinite(kelvin)], return_counts=True)
            log.warning(
                "%s: %d pixels (%.1f %%) hold values outside the plausible LST range %g-%g K (most often %g), "
                "dropped as no data. If that is a fill value, declare it: dataset.source.%s_nodata=%g.",
                paths[0], dropped, 100 * dropped / data.size, *PLAUSIBLE_K, values[counts.argmax()], sensor,
                values[counts.argmax()])
        return kelvin, grid, paths[0], dropped

    def _tile(self, paths: list[Path], sensor: str, date: dt.date) -> tuple[np.ndarray, Grid]:
        """One tile's image; several files for it are duplicates: identical ones pass, others per `duplicates`."""
        key = f"dataset.source.{sensor}_band"
        reads = [read_band(p, self.band[sensor], self.nodata[sensor], key)[:2] for p in paths]
        data, grid = reads[0]
        differ = [(p, d, g) for p, (d, g) in zip(paths[1:], reads[1:])
                  if g != grid or not np.array_equal(d, data, equal_nan=True)]
        if len(paths) > 1 and not differ:
            log.info("%s: identical duplicate(s) %s ignored", paths[0], ", ".join(p.name for p in paths[1:]))
        if not differ:
            return data, grid
        other, other_data, other_grid = differ[0]
        same_grid = all(g == grid for _, _, g in differ)
        if other_grid != grid:
            how = "on different grids"
        else:
            both = np.isfinite(data) & np.isfinite(other_data)
            diff = float(np.median(other_data[both] - data[both])) if both.any() else float("nan")
            how = f"median difference {diff:+.3g} in the files' units where both are valid"
        if self.duplicates == "error" or (self.duplicates == "mean" and not same_grid):
            raise DataError(
                f"two different {sensor} files for {date}: {paths[0]} and {other} ({how}). Remove the wrong one "
                f"(or list the date in dataset.source.exclude), or choose how to combine them: "
                f"dataset.source.duplicates=first (keeps {paths[0].name}, the first in name order)"
                + (" or dataset.source.duplicates=mean (averages where both are valid; needs the same grid)."
                   if same_grid else ".")
            )
        if self.duplicates == "first":
            log.warning("%s: %d other file(s) for %s (%s) ignored, dataset.source.duplicates=first",
                        paths[0], len(paths) - 1, date, ", ".join(p.name for p in paths[1:]))
            return data, grid
        stack = np.stack([d for d, _ in reads])
        counts = np.isfinite(stack).sum(axis=0)
        mean = np.where(counts > 0, np.nansum(stack, axis=0) / np.maximum(counts, 1), np.nan).astype(np.float32)
        log.warning("%s: averaged with %s (%s), dataset.source.duplicates=mean", paths[0],
                    ", ".join(p.name for p in paths[1:]), how)
        return mean, grid

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
            "duplicates": self.duplicates,
            "files": stats,
        }


def _mosaic(parts: list[tuple[np.ndarray, Grid]], paths: list[Path]) -> tuple[np.ndarray, Grid]:
    """Several path/rows on one date: onto the union of their footprints (first tile's pixel size and alignment),
    first valid value wins."""
    if len({g.crs for _, g in parts}) > 1:
        raise DataError(
            f"cannot mosaic {', '.join(map(str, paths))}: they are in different projections. Export all "
            f"path/rows of a date in one CRS."
        )
    first = parts[0][1]
    (xres, yres), bounds = first.res, np.array([g.bounds for _, g in parts])
    left, top = bounds[:, 0].min(), bounds[:, 3].max()
    width = int(round((bounds[:, 2].max() - left) / xres))
    height = int(round((top - bounds[:, 1].min()) / yres))
    grid = Grid.from_rasterio(first.rio_crs, Affine(xres, 0.0, left, 0.0, -yres, top), height, width)
    out = np.full(grid.shape, np.nan, np.float32)
    for data, src in parts:
        tile = warp(data, src, grid, "nearest")
        empty = np.isnan(out)
        out[empty] = tile[empty]
    log.info("mosaicked %d files for %s", len(parts), paths[0].name)
    return out, grid


def _band_index(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"dataset.source.{key}={value!r} is not a band number: give the 1-based index of the LST "
                          f"band in the files, e.g. dataset.source.{key}=1.")
    return value


def _parse_date(text: str, fmt: str, where) -> dt.date:
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError as exc:
        raise DataError(f"{where}: {text!r} is not a date in the format {fmt!r}.") from exc


def _fmt_dates(dates) -> str:
    dates = sorted(dates)
    shown = ", ".join(d.isoformat() for d in dates[:5])
    return shown + (f", ... ({len(dates)} in all)" if len(dates) > 5 else "") if dates else "none"
