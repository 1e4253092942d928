"""The embedded synthetic STF-LST generator: a seeded, physically plausible LST series written as real GeoTIFFs.

The files follow the raw Earth Engine export layout of STF-LST (Landsat/LC08_199027_<YYYYMMDD>.tif at 30 m in UTM 31N,
MODIS/<YYYY_MM_DD>.tif at 1 km in MODIS Sinusoidal, degrees Celsius, 0 = no data), so the synthetic data go through
the same folder reader, unit conversion and CRS repair as real data, and the benchmark runs with no account or
network. Inside, everything is Kelvin.

World model (all seeded by `seed`): an Orléans-like land cover (a city with suburbs on a meandering river, a
patchwork of rectangular crop and bare-soil parcels, forest, ponds, villages); per-class seasonal LST cycles; a
scene-wide weather anomaly and a fine texture that change every date; land-cover changes during the series (harvested
fields, a new built-up patch), the cases where fusion models fail. The fine image is the truth on the 30 m grid; the
coarse image is that truth averaged over 1 km MODIS pixels plus a per-date sensor bias and noise. Clouds are clustered
gaps. `truth/` records the land cover and every drawn number so tests and users can check each claim.

The truth is simulated on an extended 30 m grid that covers the whole MODIS grid, so edge MODIS pixels are averages of
real truth rather than of the fine footprint alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from tqdm.auto import tqdm

from stf_bench.data.geotiff import MODIS_SINUSOIDAL
from stf_bench.data.scene import Grid, Scene
from stf_bench.errors import ConfigError, DataError

KELVIN_OFFSET = 273.15
PATH_ROW = "199027"
FINE_CRS = CRS.from_epsg(32631)
FINE_ORIGIN = (406365.0, 5318535.0)  # upper-left corner of the STF-LST Orléans grid (UTM 31N)
FINE_RES = 30.0
COARSE_RES = 1000.0
LANDSAT_REVISIT_DAYS = 16
# How Earth Engine declares MODIS Sinusoidal: WGS 84 ellipsoid, while the coordinates are on the MODIS sphere.
GEE_DECLARED_SINUSOIDAL = CRS.from_proj4("+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs")

LAND_PEAK_DOY = 200  # mid-morning LST peaks ~4 weeks after the solstice
WATER_LAG_DAYS = 30  # thermal inertia of open water delays its cycle
CLEAR_PROBABILITY = 0.3  # chance that a sensor sees a date with no cloud at all
CLOUD_LENGTH_PX = 25.0  # cloud clusters a few km across whatever the image size
_YEAR = 365.25


@dataclass(frozen=True)
class _LandClass:
    """Seasonal cycle mean + amp * cos(2 pi (doy - peak) / year) and how strongly the class follows each effect."""

    id: int
    mean_k: float
    amp_k: float
    peak_doy: float
    weather: float  # response to the scene-wide weather anomaly (open water is damped)
    heterogeneity: float  # scale of the static per-pixel / per-parcel offsets
    texture: float  # scale of the per-date fine texture


# Central France, mid-morning: winter ~278-284 K, summer ~295-312 K; bare soil hottest in summer, urban warmest in
# winter, forest cool, water damped and lagged.
CLASSES: dict[str, _LandClass] = {
    "urban": _LandClass(1, 297.0, 13.0, LAND_PEAK_DOY, 1.0, 1.5, 1.0),
    "suburban": _LandClass(2, 294.0, 12.0, LAND_PEAK_DOY, 1.0, 1.2, 1.0),
    "crop": _LandClass(3, 291.5, 11.5, LAND_PEAK_DOY, 1.0, 1.0, 1.0),
    "forest": _LandClass(4, 288.5, 9.0, LAND_PEAK_DOY, 0.8, 0.5, 0.6),
    "water": _LandClass(5, 286.5, 8.0, LAND_PEAK_DOY + WATER_LAG_DAYS, 0.3, 0.2, 0.3),
    "bare_soil": _LandClass(6, 295.0, 17.0, LAND_PEAK_DOY, 1.2, 1.0, 1.2),
}
_ID = {name: c.id for name, c in CLASSES.items()}


def _class_table(attr: str) -> np.ndarray:
    """Per-class attribute indexed by class id (index 0 unused), for vectorized lookups on the class map."""
    table = np.zeros(max(_ID.values()) + 1, np.float32)
    for c in CLASSES.values():
        table[c.id] = getattr(c, attr)
    return table


def class_mean_k(name: str, date: dt.date) -> float:
    """The seasonal-cycle temperature of a class on a date, without weather, heterogeneity or texture."""
    c = CLASSES[name]
    doy = date.timetuple().tm_yday
    return c.mean_k + c.amp_k * math.cos(2 * math.pi * (doy - c.peak_doy) / _YEAR)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per purpose (and per date), so adding dates does not change the others' weather."""
    return np.random.default_rng([seed, *keys])


def _smooth_fields(rng: np.random.Generator, shape: tuple[int, int], lengths: tuple[float, ...]) -> list[np.ndarray]:
    """Gaussian-filtered white noise (std `length` pixels) via FFT, one standardized field per length.

    All fields share one white noise, so a small-length field is the detail of the large-length one.
    """
    spectrum = np.fft.rfft2(rng.standard_normal(shape, dtype=np.float32))
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    f2 = fy * fy + fx * fx
    fields = []
    for length in lengths:
        field = np.fft.irfft2(spectrum * np.exp(np.float32(-2 * math.pi**2 * length**2) * f2), s=shape)
        field -= field.mean()
        fields.append((field / max(float(field.std()), 1e-12)).astype(np.float32))
    return fields


def _top_fraction(field: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the floor(fraction * size) highest values: a thresholded smooth field gives clustered gaps."""
    k = int(fraction * field.size)
    mask = np.zeros(field.size, bool)
    if k:
        mask[np.argpartition(field.ravel(), -k)[-k:]] = True
    return mask.reshape(field.shape)


def _parse_date(value, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(
            f"dataset.source.{key}={value!r} is not a date; write it as YYYY-MM-DD, e.g. {key}: \"2013-04-01\"."
        ) from None


@dataclass(frozen=True)
class _Grids:
    fine: Grid
    coarse: Grid  # on the MODIS sphere (the true georeference)
    extended: Grid  # 30 m grid, aligned with `fine`, covering the whole coarse grid
    offset: tuple[int, int]  # (row, col) of the fine grid inside the extended grid


def _grids(height: int, width: int) -> _Grids:
    """The fine Orléans grid, the 1 km-aligned MODIS grid covering it with a >= 1 pixel margin, and the truth grid."""
    x0, y0 = FINE_ORIGIN
    fine = Grid.from_rasterio(FINE_CRS, Affine(FINE_RES, 0, x0, 0, -FINE_RES, y0), height, width)
    left, bottom, right, top = transform_bounds(FINE_CRS, MODIS_SINUSOIDAL, *fine.bounds, densify_pts=101)
    left = (math.floor(left / COARSE_RES) - 1) * COARSE_RES
    bottom = (math.floor(bottom / COARSE_RES) - 1) * COARSE_RES
    right = (math.ceil(right / COARSE_RES) + 1) * COARSE_RES
    top = (math.ceil(top / COARSE_RES) + 1) * COARSE_RES
    coarse = Grid.from_rasterio(
        MODIS_SINUSOIDAL,
        Affine(COARSE_RES, 0, left, 0, -COARSE_RES, top),
        round((top - bottom) / COARSE_RES),
        round((right - left) / COARSE_RES),
    )
    e_left, e_bottom, e_right, e_top = transform_bounds(MODIS_SINUSOIDAL, FINE_CRS, *coarse.bounds, densify_pts=101)
    f_left, f_bottom, f_right, f_top = fine.bounds
    pad_left = math.ceil((f_left - e_left) / FINE_RES) + 2
    pad_top = math.ceil((e_top - f_top) / FINE_RES) + 2
    pad_right = math.ceil((e_right - f_right) / FINE_RES) + 2
    pad_bottom = math.ceil((f_bottom - e_bottom) / FINE_RES) + 2
    extended = Grid.from_rasterio(
        FINE_CRS,
        Affine(FINE_RES, 0, x0 - pad_left * FINE_RES, 0, -FINE_RES, y0 + pad_top * FINE_RES),
        height + pad_top + pad_bottom,
        width + pad_left + pad_right,
    )
    return _Grids(fine, coarse, extended, (pad_top, pad_left))


@dataclass
class _World:
    """The static part of the simulation on the extended grid."""

    classes: np.ndarray  # uint8 class ids before any change
    heterogeneity_k: np.ndarray  # static per-pixel offsets (parcel offsets + smooth field), float32
    changes: list[dict]  # JSON records, fine-grid coordinates
    change_masks: list[np.ndarray]  # per change, bool on the extended grid


class SyntheticSource:
    """Seeded synthetic STF-LST series: `generate` writes the raw GeoTIFF layout, `load` reads it back as Scenes.

    Knobs (Kelvin): `weather_k` std of the per-date scene-wide anomaly; `texture_k` std of the per-date fine texture;
    `modis_bias_k` / `modis_noise_k` std of the per-date MODIS bias and per-pixel noise. `landsat_cloud_max` and
    `modis_cloud_max` bound the per-date cloud fractions (STF-LST kept Landsat < 20 % and MODIS < 10 %).
    """

    def __init__(
        self,
        n_dates: int = 12,
        height: int = 256,
        width: int = 256,
        start: str = "2013-04-01",
        end: str = "2024-10-15",
        seed: int = 0,
        gee_crs_defect: bool = True,
        weather_k: float = 2.0,
        texture_k: float = 1.0,
        modis_bias_k: float = 1.0,
        modis_noise_k: float = 0.5,
        landsat_cloud_max: float = 0.18,
        modis_cloud_max: float = 0.08,
    ) -> None:
        integers = (("n_dates", n_dates, 2), ("height", height, 32), ("width", width, 32), ("seed", seed, 0))
        for key, value, low in integers:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"dataset.source.{key}={value!r} must be an integer >= {low}.")
        for key, value in (("weather_k", weather_k), ("texture_k", texture_k), ("modis_bias_k", modis_bias_k),
                           ("modis_noise_k", modis_noise_k)):
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ConfigError(f"dataset.source.{key}={value!r} must be a number >= 0 (a standard deviation in K).")
        for key, value in (("landsat_cloud_max", landsat_cloud_max), ("modis_cloud_max", modis_cloud_max)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ConfigError(f"dataset.source.{key}={value!r} must be a cloud fraction in [0, 1), e.g. 0.1.")
        start_d, end_d = _parse_date(start, "start"), _parse_date(end, "end")
        n_slots = (end_d - start_d).days // LANDSAT_REVISIT_DAYS + 1 if end_d > start_d else 0
        if n_dates > n_slots:
            raise ConfigError(
                f"dataset.source.n_dates={n_dates} but {start_d} to {end_d} holds only {n_slots} Landsat "
                f"{LANDSAT_REVISIT_DAYS}-day revisits. Lower n_dates or widen start/end."
            )
        self.n_dates, self.height, self.width, self.seed = n_dates, height, width, seed
        self.start, self.end = start_d.isoformat(), end_d.isoformat()
        self.gee_crs_defect = bool(gee_crs_defect)
        self.weather_k, self.texture_k = float(weather_k), float(texture_k)
        self.modis_bias_k, self.modis_noise_k = float(modis_bias_k), float(modis_noise_k)
        self.landsat_cloud_max, self.modis_cloud_max = float(landsat_cloud_max), float(modis_cloud_max)

    def fingerprint(self) -> dict:
        """The constructor arguments: same fingerprint, same bytes."""
        return {
            "n_dates": self.n_dates, "height": self.height, "width": self.width, "start": self.start,
            "end": self.end, "seed": self.seed, "gee_crs_defect": self.gee_crs_defect, "weather_k": self.weather_k,
            "texture_k": self.texture_k, "modis_bias_k": self.modis_bias_k, "modis_noise_k": self.modis_noise_k,
            "landsat_cloud_max": self.landsat_cloud_max, "modis_cloud_max": self.modis_cloud_max,
        }

    # -- public API --------------------------------------------------------------------------------------------------
    def dates(self) -> list[dt.date]:
        """`n_dates` Landsat revisits (every 16 days from `start`), spread over the years and the seasons.

        Date i falls in the year of the i-th of n equal time strata and in a season taken from shuffled cycles of the
        four (so any 4 consecutive strata hold every season), at least 10 days inside it, then snaps to the nearest
        free revisit.
        """
        start, end = dt.date.fromisoformat(self.start), dt.date.fromisoformat(self.end)
        n_slots = (end - start).days // LANDSAT_REVISIT_DAYS + 1
        rng = _rng(self.seed, 0)
        seasons = np.concatenate([rng.permutation(4) for _ in range(-(-self.n_dates // 4))])
        span = (end - start).days
        taken: set[int] = set()
        for i in range(self.n_dates):
            year = (start + dt.timedelta(days=span * (i + rng.random()) / self.n_dates)).year
            days = _YEAR / 4 * seasons[i] + rng.uniform(10, _YEAR / 4 - 10)  # from 1 December (DJF, MAM, JJA, SON)
            target = dt.date(year - 1, 12, 1) + dt.timedelta(days=days)
            if target < start:
                target = dt.date(year, 12, 1) + dt.timedelta(days=days)
            elif target > end:
                target = dt.date(year - 2, 12, 1) + dt.timedelta(days=days)
            slot = min(max(round((target - start).days / LANDSAT_REVISIT_DAYS), 0), n_slots - 1)
            s = min((s for s in range(n_slots) if s not in taken), key=lambda s: (abs(s - slot), s))
            taken.add(s)
        return [start + dt.timedelta(days=LANDSAT_REVISIT_DAYS * s) for s in sorted(taken)]

    def generate(self, raw_dir: Path) -> Path:
        """Write the raw layout into `raw_dir` unless it already holds this configuration; atomic via a rename."""
        raw_dir = Path(raw_dir)
        if raw_dir.exists():
            self._check_complete(raw_dir)
            return raw_dir
        raw_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = raw_dir.parent / f".{raw_dir.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self._write(tmp)
            tmp.rename(raw_dir)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if raw_dir.exists():  # another process finished the same export first
                self._check_complete(raw_dir)
                return raw_dir
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return raw_dir

    def load(self, workdir: Path) -> list[Scene]:
        """Generate `workdir/raw-<config hash>` if needed and read it with the same folder reader as real exports.

        One raw folder per configuration, so a seed or size sweep never meets another configuration's files.
        """
        from stf_bench.data.sources.folder import FolderSource

        key = hashlib.sha256(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()[:10]
        raw_dir = self.generate(Path(workdir) / f"raw-{key}")
        return FolderSource(raw_dir, layout="raw", fine_units="C", coarse_units="C", fine_nodata=0,
                            coarse_nodata=0).load()

    # -- writing -----------------------------------------------------------------------------------------------------
    def _check_complete(self, raw_dir: Path) -> None:
        record = raw_dir / "truth" / "synthetic.json"
        if not record.is_file():
            raise DataError(
                f"{raw_dir} exists but has no truth/synthetic.json, so it is not a complete synthetic export. "
                f"Delete the folder (it is regenerated) or point the dataset at another work folder."
            )
        truth = json.loads(record.read_text())
        if truth.get("config") != self.fingerprint():
            raise DataError(
                f"{record} was generated with {truth.get('config')} but this configuration is {self.fingerprint()}. "
                f"Delete {raw_dir} or use another work folder for this configuration."
            )
        missing = [p for d in truth["dates"] for p in (d["landsat"], d["modis"]) if not (raw_dir / p).is_file()]
        if missing or not (raw_dir / "truth" / "landcover.tif").is_file():
            raise DataError(
                f"{raw_dir} is an incomplete synthetic export (missing {missing or ['truth/landcover.tif']}). "
                f"Delete the folder; it is regenerated."
            )

    def _write(self, out: Path) -> None:
        grids = _grids(self.height, self.width)
        dates = self.dates()
        world = self._world(grids, dates)
        r0, c0 = grids.offset
        fine_window = np.s_[r0:r0 + self.height, c0:c0 + self.width]
        for sub in ("Landsat", "MODIS", "truth"):
            (out / sub).mkdir(parents=True)
        modis_crs = GEE_DECLARED_SINUSOIDAL if self.gee_crs_defect else MODIS_SINUSOIDAL
        _write_tif(out / "truth" / "landcover.tif", world.classes[fine_window], grids.fine.rio_crs,
                   grids.fine.affine, nodata=None)

        records = []
        for date in tqdm(dates, desc="synthetic STF-LST", unit="date"):
            classes = world.classes.copy()
            for change, mask in zip(world.changes, world.change_masks):
                if date > dt.date.fromisoformat(change["date"]):
                    classes[mask] = _ID[change["to"]]
            fine_k, coarse_k, fine_gap, coarse_gap, drawn = self._render(date, classes, world, grids, fine_window)
            landsat = f"Landsat/LC08_{PATH_ROW}_{date:%Y%m%d}.tif"
            modis = f"MODIS/{date:%Y_%m_%d}.tif"
            _write_tif(out / landsat, _celsius(fine_k, fine_gap), grids.fine.rio_crs, grids.fine.affine, nodata=0)
            _write_tif(out / modis, _celsius(coarse_k, coarse_gap), modis_crs, grids.coarse.affine, nodata=0)
            records.append({
                "date": date.isoformat(), "landsat": landsat, "modis": modis, **drawn,
                "landsat_cloud_fraction": float(fine_gap.mean()), "modis_cloud_fraction": float(coarse_gap.mean()),
            })

        truth = {
            "generator": f"{__name__}.{type(self).__name__}",
            "config": self.fingerprint(),
            "units": "files in degrees Celsius with 0 = no data; every *_k value in Kelvin",
            "classes": {name: c.id for name, c in CLASSES.items()},
            "class_cycles": {name: asdict(c) for name, c in CLASSES.items()},
            "fine_grid": grids.fine.to_json(),
            "coarse_grid": grids.coarse.to_json(),
            "coarse_declared_crs": modis_crs.to_wkt(),
            "dates": records,
            "changes": world.changes,
            "change_rule": "from every date after `date`, the pixels in rows x cols (fine grid, half-open) whose "
                           "landcover.tif class is in `from` have class `to`",
        }
        (out / "truth" / "synthetic.json").write_text(json.dumps(truth, indent=1))

    def _render(self, date, classes, world, grids, fine_window):
        """One date: fine truth (K), coarse observation (K), cloud masks and the drawn per-date numbers."""
        rng = _rng(self.seed, 3, date.toordinal())
        weather = float(rng.normal(0.0, self.weather_k))
        bias = float(rng.normal(0.0, self.modis_bias_k))
        landsat_cloud = 0.0 if rng.random() < CLEAR_PROBABILITY else float(rng.uniform(0, self.landsat_cloud_max))
        modis_cloud = 0.0 if rng.random() < CLEAR_PROBABILITY else float(rng.uniform(0, self.modis_cloud_max))
        shape = world.classes.shape
        (texture,) = _smooth_fields(rng, shape, (1.5,))
        cloud_big, cloud_detail = _smooth_fields(rng, shape, (CLOUD_LENGTH_PX, CLOUD_LENGTH_PX / 5))
        cloud = cloud_big + np.float32(0.35) * cloud_detail

        doy = date.timetuple().tm_yday
        cycle = np.array([0.0] + [class_mean_k(n, date) for n in CLASSES], np.float32)
        sun = np.float32(0.6 + 0.8 * 0.5 * (1 + math.cos(2 * math.pi * (doy - 172) / _YEAR)))  # stronger in summer
        truth = cycle[classes]
        truth += np.float32(weather) * _class_table("weather")[classes]
        truth += sun * _class_table("heterogeneity")[classes] * world.heterogeneity_k
        truth += np.float32(self.texture_k) * _class_table("texture")[classes] * texture

        aggregated = np.full((2, *grids.coarse.shape), np.nan, np.float32)
        reproject(np.stack([truth, cloud]), aggregated, src_transform=grids.extended.affine, src_crs=FINE_CRS,
                  dst_transform=grids.coarse.affine, dst_crs=MODIS_SINUSOIDAL, dst_nodata=np.nan,
                  resampling=Resampling.average)
        if not np.isfinite(aggregated).all():
            raise RuntimeError(f"synthetic truth grid does not cover the MODIS grid on {date}: a bug in _grids")
        noise = rng.normal(0.0, self.modis_noise_k, grids.coarse.shape).astype(np.float32)
        coarse = aggregated[0] + np.float32(bias) + noise
        fine_gap = _top_fraction(cloud[fine_window], landsat_cloud)
        coarse_gap = _top_fraction(aggregated[1], modis_cloud)
        drawn = {"weather_anomaly_k": weather, "modis_bias_k": bias}
        return truth[fine_window], coarse, fine_gap, coarse_gap, drawn

    # -- the static world --------------------------------------------------------------------------------------------
    def _world(self, grids: _Grids, dates: list[dt.date]) -> _World:
        rng = _rng(self.seed, 1)
        shape = grids.extended.shape
        size = float(min(self.height, self.width))
        rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
        r0, c0 = grids.offset

        # Rectangular parcels: column strips of random widths, each cut into random heights (300-1100 m).
        edges_c = _cut(rng, shape[1])
        strip = np.searchsorted(edges_c, np.arange(shape[1]), side="right") - 1
        parcel_table = np.empty((shape[0], len(edges_c)), np.int32)
        n_parcels = 0
        for j in range(len(edges_c)):
            edges_r = _cut(rng, shape[0])
            parcel_table[:, j] = n_parcels + np.searchsorted(edges_r, np.arange(shape[0]), side="right") - 1
            n_parcels += len(edges_r)
        parcels = parcel_table[:, strip]
        parcel_class = np.where(rng.random(n_parcels) < 0.7, _ID["crop"], _ID["bare_soil"]).astype(np.uint8)
        classes = parcel_class[parcels]

        (forest,) = _smooth_fields(rng, shape, (0.08 * size,))
        classes[forest > np.quantile(forest, 0.72)] = _ID["forest"]
        (spots,) = _smooth_fields(rng, shape, (max(1.5, 0.01 * size),))
        classes[spots > np.quantile(spots, 0.995)] = _ID["water"]  # ponds
        classes[spots < np.quantile(spots, 0.005)] = _ID["suburban"]  # villages

        # City: an irregular core inside a suburban ring, centred in the middle of the fine footprint.
        rc = r0 + self.height * rng.uniform(0.35, 0.65)
        cc = c0 + self.width * rng.uniform(0.35, 0.65)
        ay, ax = rng.uniform(0.8, 1.25, 2)
        dist = np.hypot((rows - rc) / ay, (cols - cc) / ax)
        r_core, r_sub = 0.10 * size, 0.22 * size
        (edge_core,) = _smooth_fields(rng, shape, (0.05 * size,))
        (edge_sub,) = _smooth_fields(rng, shape, (0.05 * size,))
        classes[dist < r_sub * (1 + 0.3 * edge_sub)] = _ID["suburban"]
        classes[dist < r_core * (1 + 0.3 * edge_core)] = _ID["urban"]

        # River: a meander through the city centre, roughly east-west like the Loire at Orléans.
        theta = rng.uniform(-0.5, 0.5)
        u = (cols - cc) * math.cos(theta) + (rows - rc) * math.sin(theta)
        v = -(cols - cc) * math.sin(theta) + (rows - rc) * math.cos(theta)
        meander = np.zeros_like(u)
        slope = np.zeros_like(u)
        for amp, wavelength in ((0.06 * size, 0.8 * size), (0.02 * size, 0.3 * size)):
            k, phi = 2 * math.pi / wavelength, rng.uniform(0, 2 * math.pi)
            meander += amp * (np.sin(k * u + phi) - math.sin(phi))
            slope += amp * k * np.cos(k * u + phi)
        half_width = max(1.5, 0.006 * size)
        classes[np.abs(v - meander) / np.sqrt(1 + slope * slope) < half_width] = _ID["water"]

        parcel_offsets = rng.normal(0.0, 0.7, n_parcels).astype(np.float32)
        (pixel_field,) = _smooth_fields(rng, shape, (1.0,))
        field_like = np.isin(classes, (_ID["crop"], _ID["bare_soil"]))
        heterogeneity = np.where(field_like, parcel_offsets[parcels], 0).astype(np.float32) + 0.8 * pixel_field

        changes, masks = self._changes(rng, classes, parcels, grids, dates, (rc, cc, ay, ax, r_sub))
        return _World(classes, heterogeneity, changes, masks)

    def _changes(self, rng, classes, parcels, grids, dates, city):
        """Two crop parcels harvested (to bare soil) and one new built-up patch at the suburban edge, each on a date
        between two acquisitions so the series shows it before and after."""
        r0, c0 = grids.offset
        h, w = self.height, self.width
        rc, cc, ay, ax, r_sub = city
        changes, masks = [], []

        def change_date() -> str:
            k = int(rng.integers(1, len(dates)))
            return (dates[k - 1] + (dates[k] - dates[k - 1]) / 2).isoformat()

        def record(kind, mask, to, box):
            rows, cols = box
            from_ids = np.unique(classes[mask])
            left, top = grids.fine.affine @ (cols[0], rows[0])
            right, bottom = grids.fine.affine @ (cols[1], rows[1])
            changes.append({
                "id": len(changes) + 1, "kind": kind, "date": change_date(), "to": to,
                "from": [n for n, c in CLASSES.items() if c.id in from_ids],
                "rows": [int(rows[0]), int(rows[1])], "cols": [int(cols[0]), int(cols[1])],
                "bounds_utm": [left, bottom, right, top], "n_pixels": int(mask[r0:r0 + h, c0:c0 + w].sum()),
            })
            masks.append(mask)

        # New built-up patch (a commercial zone) on the suburban edge, inside the fine footprint.
        half = max(4, round(0.03 * min(h, w)))
        alpha = rng.uniform(0, 2 * math.pi)
        pr = min(max(rc + 1.2 * r_sub * ay * math.sin(alpha), r0 + half), r0 + h - half) - r0
        pc = min(max(cc + 1.2 * r_sub * ax * math.cos(alpha), c0 + half), c0 + w - half) - c0
        box = ((round(pr) - half, round(pr) + half), (round(pc) - half, round(pc) + half))
        built = np.zeros(classes.shape, bool)
        built[r0 + box[0][0]:r0 + box[0][1], c0 + box[1][0]:c0 + box[1][1]] = True
        built &= ~np.isin(classes, (_ID["water"], _ID["urban"]))
        record("built_up", built, "urban", box)

        # Harvests: the crop pixels of parcels that are mostly crop inside the fine footprint, away from the new patch.
        crop = classes == _ID["crop"]
        inside = np.zeros(classes.shape, bool)
        inside[r0:r0 + h, c0:c0 + w] = True
        n_inside = np.bincount(parcels[inside], minlength=parcels.max() + 1)
        n_crop = np.bincount(parcels[inside & crop], minlength=n_inside.size)
        eligible = (n_crop >= 0.8 * n_inside) & (n_crop >= 30)
        eligible[np.unique(parcels[built])] = False
        for pid in rng.permutation(np.flatnonzero(eligible))[:2]:
            mask = (parcels == pid) & crop
            rr, cc_ = np.nonzero(mask[r0:r0 + h, c0:c0 + w])
            record("harvest", mask, "bare_soil", ((rr.min(), rr.max() + 1), (cc_.min(), cc_.max() + 1)))
        return changes, masks


def _cut(rng: np.random.Generator, length: int, low: int = 10, high: int = 36) -> np.ndarray:
    """Start indices of consecutive segments of random lengths in [low, high] covering 0..length."""
    steps = rng.integers(low, high + 1, length // low + 2)
    starts = np.concatenate([[0], np.cumsum(steps)])
    return starts[starts < length]


def _celsius(kelvin: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """The export convention: degrees Celsius, 0 where there is no observation."""
    return np.where(gap, np.float32(0), kelvin - np.float32(KELVIN_OFFSET)).astype(np.float32)


def _write_tif(path: Path, array: np.ndarray, crs: CRS, transform: Affine, nodata: float | None) -> None:
    profile = {"driver": "GTiff", "height": array.shape[0], "width": array.shape[1], "count": 1,
               "dtype": array.dtype.name, "crs": crs, "transform": transform, "compress": "deflate"}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(array, 1)
