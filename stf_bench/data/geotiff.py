"""Reading and writing single-band GeoTIFFs as (float32 array with NaN no-data, Grid).

Also recognises the MODIS Sinusoidal projection whatever ellipsoid a file declares: Earth Engine exports declare
WGS 84 while the coordinates are on the MODIS sphere, which read literally puts the tile ~19 km off.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from stf_bench.data.scene import Grid
from stf_bench.errors import DataError

MODIS_SPHERE_RADIUS = 6371007.181
MODIS_SINUSOIDAL = CRS.from_proj4(f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={MODIS_SPHERE_RADIUS} +units=m +no_defs")


def modis_sphere_crs(crs: CRS) -> tuple[CRS, bool]:
    """Return (crs, False), or (the MODIS sphere sinusoidal, True) when `crs` is a sinusoidal on another ellipsoid."""
    if crs is None:
        return crs, False
    params = crs.to_dict()
    if params.get("proj") != "sinu" or float(params.get("lon_0", 0.0)) != 0.0:
        return crs, False
    radius = params.get("R")
    if radius is not None and abs(float(radius) - MODIS_SPHERE_RADIUS) < 1.0:
        return crs, False
    return MODIS_SINUSOIDAL, True


def read_band(path: Path, band: int = 1, nodata: float | None = None,
              band_key: str = "dataset.source.fine_band") -> tuple[np.ndarray, Grid, float | None]:
    """Read one band as float32 with no-data (declared, else the file's tag, plus non-finite values) set to NaN.

    Returns the array, its grid (MODIS sphere fixed) and the no-data value that was applied. `band_key` is the
    config key the band index came from, for the message when the file has fewer bands.
    """
    path = Path(path)
    try:
        with rasterio.open(path) as ds:
            if not 1 <= band <= ds.count:
                raise DataError(
                    f"{path}: band {band} requested but the file has {ds.count} band(s) ({band_key}={band}). "
                    f"Set {band_key} to the 1-based index of the LST band, from 1 to {ds.count}."
                )
            if ds.crs is None:
                raise DataError(
                    f"{path}: the file has no coordinate reference system, so it cannot be placed on a map. "
                    f"Re-export it as a georeferenced GeoTIFF."
                )
            data = ds.read(band).astype(np.float32)
            crs, _ = modis_sphere_crs(ds.crs)
            grid = Grid.from_rasterio(crs, ds.transform, ds.height, ds.width)
            applied = nodata if nodata is not None else ds.nodata
    except RasterioError as exc:
        raise DataError(
            f"{path}: cannot be read as a GeoTIFF ({exc}). The file is corrupt or truncated: "
            f"re-download or re-export it, or remove it from the folder."
        ) from exc
    invalid = ~np.isfinite(data)
    if applied is not None and np.isfinite(applied):
        invalid |= data == np.float32(applied)
    data[invalid] = np.nan
    return data, grid, applied


def write_geotiff(path: Path, arrays: np.ndarray, grid: Grid, nodata: float | None = float("nan"), **tags) -> None:
    """Write a (H,W) or (B,H,W) array with the grid's georeference, DEFLATE-compressed and tiled."""
    arrays = np.asarray(arrays)
    if arrays.ndim == 2:
        arrays = arrays[None]
    count, height, width = arrays.shape
    profile = {
        "driver": "GTiff",
        "dtype": arrays.dtype.name,
        "count": count,
        "height": height,
        "width": width,
        "crs": grid.rio_crs,
        "transform": grid.affine,
        "compress": "deflate",
        "predictor": 3 if arrays.dtype.kind == "f" else 2,
        "tiled": height >= 256 and width >= 256,
        "nodata": nodata,
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    tmp = Path(path).with_suffix(".tif.part")
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.write(arrays)
        if tags:
            ds.update_tags(**{k: str(v) for k, v in tags.items()})
    os.replace(tmp, path)
