"""Shared test helpers: tiny, really georeferenced GeoTIFF folders in each layout the folder source reads.

The fine grid is a 66 x 66 corner of the STF-LST Orléans grid (30 m, UTM 31N); the coarse grid is 1 km MODIS
Sinusoidal around it. Values encode the date index (`base_c(k)`), so a label shifted by one date is visible.
Also: the composed Hydra config, and the real `prepare.py` in a subprocess. A plain module rather than conftest.py:
the tests import these helpers by name, and another test folder has its own `conftest` module.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from stf_bench.data.geotiff import MODIS_SINUSOIDAL

REPO = Path(__file__).resolve().parents[2]
UTM31N = CRS.from_epsg(32631)
# How Earth Engine declares MODIS Sinusoidal: a WGS 84 ellipsoid, while the coordinates are on the MODIS sphere.
GEE_SINUSOIDAL = CRS.from_proj4("+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs")
FINE_SHAPE = (66, 66)
FINE_TRANSFORM = Affine(30.0, 0.0, 406365.0, 0.0, -30.0, 5318535.0)
KELVIN = 273.15


def dates(n: int, start: str = "2020-01-01", step_days: int = 16) -> list[dt.date]:
    first = dt.date.fromisoformat(start)
    return [first + dt.timedelta(days=step_days * k) for k in range(n)]


def base_c(k: int) -> float:
    """The scene-wide level (°C) of date index k; fine and coarse of one date differ by 1 K."""
    return 10.0 + 3.0 * k


def fine_c(k: int, shape=FINE_SHAPE) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (base_c(k) + 0.05 * rows + 0.03 * cols).astype(np.float32)


def coarse_transform(margin: int = 1) -> tuple[Affine, tuple[int, int]]:
    """1 km MODIS Sinusoidal (sphere) grid snapped to 1000 m that covers the fine footprint with `margin` pixels."""
    h, w = FINE_SHAPE
    left, top = FINE_TRANSFORM.c, FINE_TRANSFORM.f
    right, bottom = left + FINE_TRANSFORM.a * w, top + FINE_TRANSFORM.e * h
    x0, y0, x1, y1 = transform_bounds(UTM31N, MODIS_SINUSOIDAL, left, bottom, right, top, densify_pts=21)
    x0, x1 = (math.floor(x0 / 1000) - margin) * 1000, (math.ceil(x1 / 1000) + margin) * 1000
    y0, y1 = (math.floor(y0 / 1000) - margin) * 1000, (math.ceil(y1 / 1000) + margin) * 1000
    return Affine(1000.0, 0.0, x0, 0.0, -1000.0, y1), ((y1 - y0) // 1000, (x1 - x0) // 1000)


def coarse_c(k: int, shape) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (base_c(k) + 1.0 + 0.2 * rows + 0.1 * cols).astype(np.float32)


def write_tif(path: Path, bands, crs, transform: Affine, nodata: float | None = None) -> Path:
    """A plain GeoTIFF as an exporter would write it; `bands` is (H,W) or (B,H,W)."""
    bands = np.asarray(bands, dtype=np.float32)
    bands = bands[None] if bands.ndim == 2 else bands
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "count": bands.shape[0], "height": bands.shape[1], "width": bands.shape[2],
               "dtype": "float32", "crs": crs, "transform": transform}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(bands)
    return path


def fine_gap(k: int) -> tuple[slice, slice]:
    """A cloud on the fine image of date k that moves with k and touches the image edge on even dates."""
    r = 0 if k % 2 == 0 else 20
    return np.s_[r:r + 9, 5 + 4 * k:17 + 4 * k]


def make_raw(root: Path, days: list[dt.date], skip_landsat=(), skip_modis=(), gaps: bool = True,
             tag_nodata: bool = True) -> Path:
    """Raw Earth Engine exports: Landsat/LC08_199027_<YYYYMMDD>.tif + MODIS/<YYYY_MM_DD>.tif, °C, 0 = no data.

    Date k's fine image has a cloud (`fine_gap(k)`); coarse pixel (2, 2) of date 0, inside the
    fine footprint, is a gap too.
    """
    ct, cshape = coarse_transform()
    nodata = 0.0 if tag_nodata else None
    for k, day in enumerate(days):
        if day not in skip_landsat:
            fine = fine_c(k)
            if gaps:
                fine[fine_gap(k)] = 0.0
            write_tif(root / "Landsat" / f"LC08_199027_{day:%Y%m%d}.tif", fine, UTM31N, FINE_TRANSFORM, nodata)
        if day not in skip_modis:
            coarse = coarse_c(k, cshape)
            if gaps and k == 0:
                coarse[2, 2] = 0.0
            write_tif(root / "MODIS" / f"{day:%Y_%m_%d}.tif", coarse, GEE_SINUSOIDAL, ct, nodata)
    return root


def make_paired(root: Path, days: list[dt.date]) -> Path:
    """Published-style pairs L_YYYYMMDD.tif / M_YYYYMMDD.tif, Kelvin, no gaps, MODIS on its (sphere) grid."""
    ct, cshape = coarse_transform()
    for k, day in enumerate(days):
        write_tif(root / f"L_{day:%Y%m%d}.tif", fine_c(k) + KELVIN, UTM31N, FINE_TRANSFORM)
        write_tif(root / f"M_{day:%Y%m%d}.tif", coarse_c(k, cshape) + KELVIN, MODIS_SINUSOIDAL, ct)
    return root


def make_glob(root: Path, days: list[dt.date], nodata: float = -3.4e38) -> Path:
    """Yanco-like names (Landsat_LST_x_<YYYYMMDD>.tif, MOD11A1_LST_x_<YYYYMMDD>.tif), Kelvin, both on the fine grid,
    no-data -3.4e38 declared in the file's tag; pixel (0, 0) of each fine image is no data."""
    for k, day in enumerate(days):
        fine = fine_c(k) + KELVIN
        fine[0, 0] = nodata
        coarse = np.full(FINE_SHAPE, base_c(k) + 1.0 + KELVIN, np.float32)
        write_tif(root / f"Landsat_LST_cloudrm_{day:%Y%m%d}.tif", fine, UTM31N, FINE_TRANSFORM, nodata)
        write_tif(root / f"MOD11A1_LST_cloudrm_{day:%Y%m%d}.tif", coarse, UTM31N, FINE_TRANSFORM, nodata)
    return root


def run_prepare(*overrides: str, tmp: Path) -> subprocess.CompletedProcess:
    """`python prepare.py ...` through the real Hydra entry point, data and Hydra outputs under `tmp`."""
    env = {**os.environ, "NO_GCE_CHECK": "true", "WANDB_MODE": "offline", "COLUMNS": "160"}
    cmd = [sys.executable, str(REPO / "prepare.py"), *overrides, f"paths.data_dir={tmp / 'data'}",
           f"hydra.run.dir={tmp / 'out'}"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def compose(*overrides: str, config_name: str = "prepare"):
    """The composed Hydra config of an entry point, as the command line would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from stf_bench.resolvers import register

    register()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))
