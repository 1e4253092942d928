"""The Earth Engine source: rebuild STF-LST, or the same recipe over any region and years, from Google Earth Engine.

`GeeSource.load(workdir)` asks Earth Engine for a per-day catalog (valid share of the region per acquisition day),
pairs Landsat and MODIS days that pass their thresholds, downloads each file of the pairs into ``workdir/raw`` in the
STF-LST raw-export layout (``Landsat/LC08_<PPPRRR>_<YYYYMMDD>.tif``, ``MODIS/<YYYY_MM_DD>.tif``), then reads them with
the folder source like any other user's files. Files are Kelvin float32 with NaN as no data, on grids computed here:
Landsat on a UTM grid snapped to the Landsat pixel corners, MODIS on the sinusoidal grid with the MODIS sphere
declared. Landsat files carry a second band, 1 where the scene itself observed the pixel, so pixels filled by the
temporal interpolation are marked filled and never scored as observed.

The catalog is cached in ``raw/catalog.json`` (by chunk, so an interrupted query resumes too) and keyed by the query
fingerprint; with a complete cache and all files present, `load` needs neither network nor credentials.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform_bounds
from tqdm.auto import tqdm

from stf_bench.data.geotiff import MODIS_SINUSOIDAL
from stf_bench.data.scene import Grid, Scene
from stf_bench.data.sources import gee_query as q
from stf_bench.data.sources.folder import RAW_LANDSAT, FolderSource
from stf_bench.data.sources.gee_download import DownloadSpec, EarthEngineTransport, download_image, with_retry
from stf_bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when the query or the file format changes: invalidates caches and stores
MS_PER_DAY = 86_400_000
MODIS_DAYS_PER_REQUEST = 100
CATALOG = "catalog.json"
EE_CRS_MODIS_SINUSOIDAL = "SR-ORG:6974"


# -- configuration ---------------------------------------------------------------------------------------------------
def _section(value, key: str, fields: tuple[str, ...]) -> dict:
    """A config mapping with exactly `fields`, as a plain dict; errors name `dataset.source.<key>`."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"dataset.source.{key} must be a mapping with keys {', '.join(fields)}; got {value!r}.")
    missing = [f for f in fields if f not in value]
    unknown = [f for f in value if f not in fields]
    if missing or unknown:
        raise ConfigError(
            f"dataset.source.{key}: "
            + (f"missing {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown key(s) {', '.join(map(str, unknown))}" if unknown else "")
            + f". Expected exactly: {', '.join(fields)} (see conf/dataset/gee.yaml)."
        )
    return dict(value)


def _percent(value, key: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 100.0:
        raise ConfigError(f"dataset.source.{key}={value} must be a percentage between 0 and 100.")
    return value


def _collections(value, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not value:
        raise ConfigError(f"dataset.source.{key} must be a non-empty list of collection ids; got {value!r}.")
    return tuple(str(v) for v in value)


def landsat_spec(cfg) -> q.LandsatSpec:
    fields = ("collections", "band", "scale_factor", "add_offset", "qa_band", "qa_mask_bits", "min_valid_percent")
    c = _section(cfg, "landsat", fields)
    bits = tuple(int(b) for b in c["qa_mask_bits"])
    if any(not 0 <= b <= 15 for b in bits):
        raise ConfigError(f"dataset.source.landsat.qa_mask_bits={list(bits)}: QA_PIXEL bits are 0-15.")
    return q.LandsatSpec(_collections(c["collections"], "landsat.collections"), str(c["band"]),
                         float(c["scale_factor"]), float(c["add_offset"]), str(c["qa_band"]), bits,
                         _percent(c["min_valid_percent"], "landsat.min_valid_percent"))


def modis_spec(cfg) -> q.ModisSpec:
    fields = ("collections", "band", "scale_factor", "add_offset", "qa_band", "qc_rules", "min_valid_percent")
    c = _section(cfg, "modis", fields)
    rules = []
    for k, rule in enumerate(c["qc_rules"]):
        r = _section(rule, f"modis.qc_rules[{k}]", ("bits", "max"))
        bits = [int(b) for b in r["bits"]]
        if len(bits) != 2 or not 0 <= bits[0] <= bits[1] <= 15:
            raise ConfigError(
                f"dataset.source.modis.qc_rules[{k}].bits={r['bits']} must be [first, last] with 0 <= first <= "
                f"last <= 15, e.g. [6, 7]."
            )
        rule = q.QcRule(bits[0], bits[1], int(r["max"]))
        if not 0 <= rule.max_value <= rule.field_mask:
            raise ConfigError(
                f"dataset.source.modis.qc_rules[{k}].max={rule.max_value} does not fit in bits {bits} "
                f"(0..{rule.field_mask})."
            )
        rules.append(rule)
    return q.ModisSpec(_collections(c["collections"], "modis.collections"), str(c["band"]), float(c["scale_factor"]),
                       float(c["add_offset"]), str(c["qa_band"]), tuple(rules),
                       _percent(c["min_valid_percent"], "modis.min_valid_percent"))


def download_spec(cfg) -> DownloadSpec:
    fields = ("max_request_bytes", "max_request_side", "retries", "backoff_s", "max_backoff_s", "timeout_s")
    c = _section(cfg, "download", fields)
    spec = DownloadSpec(int(c["max_request_bytes"]), int(c["max_request_side"]), int(c["retries"]),
                        float(c["backoff_s"]), float(c["max_backoff_s"]), float(c["timeout_s"]))
    if spec.max_request_bytes > 48 * 2**20 or spec.max_request_side > 32768:
        raise ConfigError(
            f"dataset.source.download: max_request_bytes={spec.max_request_bytes} / max_request_side="
            f"{spec.max_request_side} exceed Earth Engine's limits (48 MiB, 32768 px); lower them."
        )
    if spec.retries < 0 or spec.backoff_s < 0:
        raise ConfigError("dataset.source.download.retries and backoff_s must be >= 0.")
    return spec


def _lonlat_coords(geometry: dict, where: str):
    """All (lon, lat) positions of a Polygon/MultiPolygon, checked to be degrees."""
    kind = geometry.get("type")
    if kind == "Polygon":
        rings = geometry["coordinates"]
    elif kind == "MultiPolygon":
        rings = [ring for poly in geometry["coordinates"] for ring in poly]
    else:
        raise ConfigError(f"{where}: geometry type {kind!r} is not an area; use Polygon or MultiPolygon features.")
    coords = [(float(x), float(y)) for ring in rings for x, y, *_ in ring]
    if not coords or any(abs(x) > 180 or abs(y) > 90 for x, y in coords):
        raise ConfigError(
            f"{where}: coordinates are not longitude/latitude degrees. GeoJSON must be in WGS 84 (RFC 7946); "
            f"convert with: ogr2ogr -f GeoJSON -t_srs EPSG:4326 region.geojson your_file"
        )
    return coords


def region_geojson(cfg) -> dict:
    """The region as one lon/lat GeoJSON Polygon/MultiPolygon, from `{bbox: [w, s, e, n]}` or `{geojson: path}`."""
    if not isinstance(cfg, Mapping) or len(cfg) != 1 or next(iter(cfg)) not in ("bbox", "geojson"):
        raise ConfigError(
            f"dataset.source.region={cfg!r} must be either {{bbox: [west, south, east, north]}} in degrees or "
            f"{{geojson: /path/to/region.geojson}} (other vector formats: convert with ogr2ogr -f GeoJSON)."
        )
    if "bbox" in cfg:
        bbox = [float(v) for v in cfg["bbox"]]
        if len(bbox) != 4 or not (-180 <= bbox[0] < bbox[2] <= 180 and -90 <= bbox[1] < bbox[3] <= 90):
            raise ConfigError(
                f"dataset.source.region.bbox={cfg['bbox']} must be [west, south, east, north] in degrees with "
                f"west < east and south < north."
            )
        w, s, e, n = bbox
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    path = Path(str(cfg["geojson"])).expanduser()
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"dataset.source.region.geojson={path}: cannot read it as GeoJSON ({exc}).") from None
    if doc.get("type") == "FeatureCollection":
        geometries = [f.get("geometry") or {} for f in doc.get("features", [])]
    elif doc.get("type") == "Feature":
        geometries = [doc.get("geometry") or {}]
    else:
        geometries = [doc]
    polygons = []
    for geom in geometries:
        _lonlat_coords(geom, str(path))
        polygons += [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    if not polygons:
        raise ConfigError(f"dataset.source.region.geojson={path} holds no polygon.")
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def _grid_crs(crs: str, region: dict) -> tuple[str, CRS]:
    """(Earth Engine CRS code, the rasterio CRS written to the files) for a configured `crs`."""
    if crs == "auto":
        lons, lats = zip(*_lonlat_coords(region, "dataset.source.region"))
        zone = int((0.5 * (min(lons) + max(lons)) + 180) // 6) % 60 + 1
        crs = f"EPSG:{32600 + zone}"  # USGS grids Landsat in northern UTM zones in both hemispheres
    if crs == EE_CRS_MODIS_SINUSOIDAL:
        return crs, MODIS_SINUSOIDAL
    if not crs.upper().startswith("EPSG:"):
        raise ConfigError(
            f"grid crs {crs!r}: use an EPSG code (e.g. EPSG:32631), 'auto' (UTM zone of the region) or "
            f"{EE_CRS_MODIS_SINUSOIDAL} (MODIS Sinusoidal)."
        )
    try:
        return crs, CRS.from_user_input(crs)
    except CRSError as exc:
        raise ConfigError(f"grid crs {crs!r} is not a known EPSG code ({exc}).") from None


def snapped_grid(cfg, key: str, region: dict) -> tuple[str, Grid]:
    """The north-up grid covering the region's bounding box, its corners on multiples of `scale` plus `snap`.

    With STF-LST's box, EPSG:32631, 30 m and snap 15 this is the published 950 x 950 grid at (406365, 5318535):
    Landsat pixel corners lie at 15 m modulo 30 m, so Landsat is fetched without resampling.
    """
    c = _section(cfg, key, ("crs", "scale", "snap"))
    ee_crs, crs = _grid_crs(str(c["crs"]), region)
    scale, snap = float(c["scale"]), float(c["snap"])
    if scale <= 0:
        raise ConfigError(f"dataset.source.{key}.scale={scale} must be a positive pixel size in metres.")
    lons, lats = zip(*_lonlat_coords(region, "dataset.source.region"))
    left, bottom, right, top = transform_bounds("EPSG:4326", crs, min(lons), min(lats), max(lons), max(lats),
                                                densify_pts=21)
    x0 = math.floor((left - snap) / scale + 1e-9) * scale + snap
    y1 = math.ceil((top - snap) / scale - 1e-9) * scale + snap
    width = math.ceil((right - x0) / scale - 1e-9)
    height = math.ceil((y1 - bottom) / scale - 1e-9)
    return ee_crs, Grid.from_rasterio(crs, rasterio.Affine(scale, 0.0, x0, 0.0, -scale, y1), height, width)


def _date(value, key: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ConfigError(f"dataset.source.{key}={value!r} is not a date YYYY-MM-DD.") from None


# -- catalog and plan ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    """One acquisition day of a sensor: valid share of the region (%) and its images (asset id, time in ms)."""

    day: dt.date
    valid_percent: float
    images: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class LandsatJob:
    asset: str
    path: str  # relative to raw/
    day: dt.date
    before: tuple[tuple[str, float], ...]  # (asset, days from target), farthest first
    after: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ModisJob:
    asset: str
    path: str
    day: dt.date


def parse_days(rows, what: str) -> list[Day]:
    """Catalog rows [day, percent, [[asset, ms], ...]] from Earth Engine into Days (null percent = no pixel)."""
    try:
        return [Day(dt.date.fromisoformat(day), float(pct or 0.0), tuple((str(a), int(t)) for a, t in images))
                for day, pct, images in rows]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: unexpected catalog answer from Earth Engine ({exc}): {str(rows)[:200]}") from None


def landsat_file(asset: str) -> str:
    name = asset.rsplit("/", 1)[-1] + ".tif"
    if not RAW_LANDSAT.match(name):
        raise ConfigError(
            f"Landsat image {asset} does not have a Collection 2 scene name (LC08_PPPRRR_YYYYMMDD); "
            f"dataset.source.landsat.collections supports LANDSAT/LC08/C02/T1_L2 and LANDSAT/LC09/C02/T1_L2."
        )
    return f"Landsat/{name}"


def plan_downloads(landsat_days: list[Day], modis_days: dict[str, list[Day]], landsat: q.LandsatSpec,
                   modis: q.ModisSpec, fill_days: float | None) -> tuple[list[LandsatJob], list[ModisJob]]:
    """Same-day pairs of days that pass both thresholds, and the files they need.

    MODIS collections serve days in priority order. Interpolation neighbours are the images of all Landsat days that
    pass the threshold (paired or not) within +-fill_days of the target, excluding the target itself.
    """
    usable = {d.day: d for d in landsat_days if d.valid_percent >= landsat.min_valid_percent and d.images}
    modis_jobs: dict[dt.date, ModisJob] = {}
    for cid in modis.collections:
        for d in modis_days.get(cid, []):
            if d.day in usable and d.day not in modis_jobs and d.valid_percent >= modis.min_valid_percent and d.images:
                modis_jobs[d.day] = ModisJob(d.images[0][0], f"MODIS/{d.day:%Y_%m_%d}.tif", d.day)
    pool = sorted((t, a) for d in usable.values() for a, t in d.images)
    window = (fill_days or 0) * MS_PER_DAY
    landsat_jobs = []
    for day in sorted(modis_jobs):
        for asset, t in usable[day].images:
            near = [(a, (ta - t) / MS_PER_DAY) for ta, a in pool if a != asset and abs(ta - t) <= window]
            before = tuple(sorted(((a, x) for a, x in near if x < 0), key=lambda n: n[1]))
            after = tuple(sorted(((a, x) for a, x in near if x > 0), key=lambda n: -n[1]))
            landsat_jobs.append(LandsatJob(asset, landsat_file(asset), day, before, after))
    return landsat_jobs, [modis_jobs[d] for d in sorted(modis_jobs)]


def _year_windows(start: str, end: str) -> list[tuple[str, str]]:
    """[start, end) cut at each 1 January, so each catalog request stays small enough to finish in time."""
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    cuts = [a] + [dt.date(y, 1, 1) for y in range(a.year + 1, b.year + 1) if dt.date(y, 1, 1) < b] + [b]
    return [(x.isoformat(), y.isoformat()) for x, y in zip(cuts, cuts[1:])]


# -- the source ------------------------------------------------------------------------------------------------------
class GeeSource:
    """Scenes from Google Earth Engine with the STF-LST recipe (conf/dataset/gee.yaml documents every setting)."""

    def __init__(self, region, start, end, landsat, landsat_temporal_fill_days, modis, fine_grid, coarse_grid,
                 download, project, service_account_key, transport=None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.region = region_geojson(region)
        self.start, self.end = _date(start, "start"), _date(end, "end")
        if self.start >= self.end:
            raise ConfigError(f"dataset.source.start={self.start} must be before dataset.source.end={self.end}.")
        self.landsat, self.modis = landsat_spec(landsat), modis_spec(modis)
        fill = landsat_temporal_fill_days
        if fill is not None and float(fill) < 0:
            raise ConfigError(f"dataset.source.landsat_temporal_fill_days={fill} must be >= 0 (0 or null = off).")
        self.fill_days = float(fill) if fill else 0.0
        self.fine_temporal_fill_days = self.fill_days  # a cross-date fill the store redoes locally (data/refill.py)
        self.fine_crs, self.fine_grid = snapped_grid(fine_grid, "fine_grid", self.region)
        self.coarse_crs, self.coarse_grid = snapped_grid(coarse_grid, "coarse_grid", self.region)
        self.download = download_spec(download)
        self.transport = transport or EarthEngineTransport(project, service_account_key, self.download.timeout_s)
        self.sleep = sleep
        self._connected = False

    def fingerprint(self) -> dict:
        """What determines the downloaded data (no project, no credentials): recipe, region, dates, specs, grids."""
        return {
            "recipe": f"stf-lst-gee/{RECIPE_VERSION}",
            "region": self.region,
            "start": self.start,
            "end": self.end,
            "landsat": asdict(self.landsat),
            "landsat_temporal_fill_days": self.fill_days,
            "modis": asdict(self.modis),
            "fine_grid": {"ee_crs": self.fine_crs, **self.fine_grid.to_json()},
            "coarse_grid": {"ee_crs": self.coarse_crs, **self.coarse_grid.to_json()},
        }

    def load(self, workdir: Path) -> list[Scene]:
        raw = Path(workdir) / "raw"
        catalog = self._catalog(raw)
        landsat_jobs, modis_jobs = self._plan(catalog)
        self._download(raw, landsat_jobs, modis_jobs)
        scenes = FolderSource(root=raw, layout="raw", fine_units="K", coarse_units="K", fine_nodata=None,
                              coarse_nodata=None).load()
        for scene in scenes:
            apply_observed(scene, sorted((raw / "Landsat").glob(f"*_{scene.key}.tif")))
        return scenes

    # -- steps ---------------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        if not self._connected:
            self.transport.connect()
            self._connected = True

    def _catalog(self, raw: Path) -> dict:
        """Landsat per-day availability by year, then MODIS on the usable Landsat days; cached chunk by chunk."""
        path = raw / CATALOG
        query = json.loads(json.dumps(self.fingerprint()))
        cached = json.loads(path.read_text()) if path.is_file() else None
        if cached is not None and cached.get("query") != query:
            log.warning("%s: the Earth Engine query changed since the last download; removing its files", raw)
            for sub in ("Landsat", "MODIS"):
                shutil.rmtree(raw / sub, ignore_errors=True)
            cached = None
        catalog = cached or {"query": query, "chunks": {}, "complete": False}
        if not catalog["complete"]:
            self._connect()  # before any progress bar: missing credentials fail first and fast
        chunks = catalog["chunks"]
        region = None

        def fetch(key: str, build) -> list:
            nonlocal region
            if key not in chunks:
                region = region or q.region_geometry(self.region)
                rows = with_retry(lambda: self.transport.compute_value(build(region)), f"catalog {key}",
                                  self.download, self.sleep)
                chunks[key] = rows
                _write_json(path, catalog)
            return chunks[key]

        fine = q.SensorGrid(self.fine_crs, self.fine_grid.transform)
        coarse = q.SensorGrid(self.coarse_crs, self.coarse_grid.transform)
        windows = _year_windows(self.start, self.end)
        for a, b in tqdm(windows, desc="Earth Engine catalog: Landsat", unit="year"):
            fetch(f"landsat {a}..{b}", lambda reg, a=a, b=b: q.landsat_catalog(self.landsat, reg, a, b, fine))
        landsat_days = self._landsat_days(catalog)
        usable = sorted(d.day.isoformat() for d in landsat_days if d.valid_percent >= self.landsat.min_valid_percent)
        served: set[str] = set()
        for cid in self.modis.collections:
            todo = [d for d in usable if d not in served]
            parts = [todo[k:k + MODIS_DAYS_PER_REQUEST] for k in range(0, len(todo), MODIS_DAYS_PER_REQUEST)]
            for part in tqdm(parts, desc=f"Earth Engine catalog: {cid}", unit="request"):
                key = f"modis {cid} {part[0]}..{part[-1]} ({len(part)} days)"
                rows = fetch(key, lambda reg, cid=cid, part=part: q.modis_catalog(self.modis, cid, part, reg, coarse))
                served |= {d.day.isoformat() for d in parse_days(rows, key)
                           if d.valid_percent >= self.modis.min_valid_percent and d.images}
        if not catalog["complete"]:
            catalog["complete"] = True
            _write_json(path, catalog)
        return catalog

    def _landsat_days(self, catalog: dict) -> list[Day]:
        return [d for key, rows in catalog["chunks"].items() if key.startswith("landsat ")
                for d in parse_days(rows, key)]

    def _plan(self, catalog: dict) -> tuple[list[LandsatJob], list[ModisJob]]:
        landsat_days = self._landsat_days(catalog)
        modis_days: dict[str, list[Day]] = {}
        for key, rows in catalog["chunks"].items():
            if key.startswith("modis "):
                modis_days.setdefault(key.split(" ")[1], []).extend(parse_days(rows, key))
        landsat_jobs, modis_jobs = plan_downloads(landsat_days, modis_days, self.landsat, self.modis, self.fill_days)
        n_usable = sum(d.valid_percent >= self.landsat.min_valid_percent for d in landsat_days)
        log.info("Earth Engine: %d Landsat days, %d with >= %g%% valid; %d same-day pairs with MODIS >= %g%%",
                 len(landsat_days), n_usable, self.landsat.min_valid_percent, len(modis_jobs),
                 self.modis.min_valid_percent)
        if not modis_jobs:
            raise DataError(
                f"Earth Engine: no same-day Landsat/MODIS pair between {self.start} and {self.end} over the region: "
                f"{len(landsat_days)} Landsat acquisition days, {n_usable} with >= "
                f"{self.landsat.min_valid_percent:g}% valid pixels, none of them with a MODIS day >= "
                f"{self.modis.min_valid_percent:g}% valid. Widen dataset.source.start/end, check "
                f"dataset.source.region, or lower dataset.source.landsat.min_valid_percent / modis.min_valid_percent."
            )
        return landsat_jobs, modis_jobs

    def _download(self, raw: Path, landsat_jobs: list[LandsatJob], modis_jobs: list[ModisJob]) -> None:
        """Fetch every missing file; existing files are complete (written by rename) and skipped."""
        for stale in raw.glob("*/*.part"):
            stale.unlink()
        for label, jobs in (("Landsat", landsat_jobs), ("MODIS", modis_jobs)):
            pending = [j for j in jobs if not (raw / j.path).is_file()]
            bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=f"Earth Engine download: {label}",
                       unit="file")
            with bar:
                for job in pending:
                    self._connect()
                    if isinstance(job, LandsatJob):
                        image = q.landsat_download_image(self.landsat, job.asset, job.before, job.after)
                        bands, ee_crs, grid = [q.LST, q.OBSERVED], self.fine_crs, self.fine_grid
                        tags = {"temporal_fill_neighbours": f"{len(job.before)} before, {len(job.after)} after"}
                    else:
                        image = q.modis_download_image(self.modis, job.asset)
                        bands, ee_crs, grid, tags = [q.LST], self.coarse_crs, self.coarse_grid, {}
                    download_image(self.transport, image, ee_crs, grid, bands, raw / job.path, self.download,
                                   self.sleep, q.NODATA, source=job.asset, **tags)
                    bar.update()


def apply_observed(scene: Scene, landsat_files: list[Path]) -> None:
    """Mark as filled the fine pixels that Earth Engine interpolated in time (band 2 of the Landsat files is 0).

    Several path/rows of a date are combined as the folder reader mosaics them: the first file with a value wins.
    """
    observed = np.zeros(scene.fine.shape, bool)
    taken = np.zeros(scene.fine.shape, bool)
    for path in landsat_files:
        with rasterio.open(path) as ds:
            if (ds.height, ds.width) != scene.fine.shape or ds.count < 2:
                raise DataError(
                    f"{path}: expected 2 bands of shape {scene.fine.shape} (LST, observed), found {ds.count} band(s) "
                    f"of shape {(ds.height, ds.width)}. Delete {path.parent.parent} to download it again."
                )
            value, seen = ds.read(1), ds.read(2)
        first = np.isfinite(value) & ~taken
        observed[first] = seen[first] == 1
        taken |= first
    finite = np.isfinite(scene.fine)
    scene.fine_valid = finite & observed
    scene.fine_filled = finite & ~observed


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)
