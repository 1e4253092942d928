"""Putting the coarse image on the fine grid: the STF-LST resize (faithful) or a georeferenced warp.

Both check first that the two footprints overlap, so a wrong CRS fails loudly instead of pairing unrelated pixels.
The resize ignores the footprints, so its misplacement of every coarse pixel is measured against the georeference
(`misregistration`); the coarse pixel size on the fine grid that each placement produces (`coarse_pixel_size`) is what
the block-based baselines reason in.
"""

from __future__ import annotations

import logging

import numpy as np
from rasterio.warp import Resampling, reproject, transform, transform_bounds

from stf_bench.data.scene import Grid
from stf_bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
RESAMPLING = {"average": Resampling.average, "bilinear": Resampling.bilinear, "cubic": Resampling.cubic,
              "nearest": Resampling.nearest}


def footprint_coverage(fine: Grid, coarse: Grid) -> float:
    """Fraction of the fine footprint inside the coarse footprint (computed in the fine CRS)."""
    left, bottom, right, top = transform_bounds(coarse.rio_crs, fine.rio_crs, *coarse.bounds, densify_pts=21)
    f_left, f_bottom, f_right, f_top = fine.bounds
    width = max(0.0, min(right, f_right) - max(left, f_left))
    height = max(0.0, min(top, f_top) - max(bottom, f_bottom))
    return width * height / ((f_right - f_left) * (f_top - f_bottom))


def check_overlap(fine: Grid, coarse: Grid, fine_path: str, coarse_path: str, min_coverage: float = 0.5) -> float:
    coverage = footprint_coverage(fine, coarse)
    if coverage < min_coverage:
        fb = fine.bounds
        cb = transform_bounds(coarse.rio_crs, fine.rio_crs, *coarse.bounds, densify_pts=21)
        raise DataError(
            f"the footprints of {fine_path} and {coarse_path} do not overlap: only {coverage:.0%} of the fine image "
            f"lies inside the coarse image (fine bounds {_fmt(fb)}, coarse bounds {_fmt(cb)} in the fine CRS). One "
            f"of the files has a wrong CRS or transform (e.g. a MODIS Sinusoidal file declared in another "
            f"projection): re-export it with correct georeference."
        )
    if coverage < 0.99:
        log.warning("%s covers only %.1f%% of %s", coarse_path, 100 * coverage, fine_path)
    return coverage


def resize_align_corners(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The STF-LST scripts' resize: bicubic to the fine array shape with align_corners=True, footprints ignored."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=shape, mode="bicubic", align_corners=True)[0, 0].numpy()


def warp(data: np.ndarray, src: Grid, dst: Grid, resampling: str) -> np.ndarray:
    """Reproject `data` from `src` to `dst` with rasterio; NaN is no data on both sides."""
    if resampling not in RESAMPLING:
        raise ConfigError(f"preprocess.resampling={resampling!r}: use one of {', '.join(RESAMPLING)}.")
    out = np.full(dst.shape, np.nan, np.float32)
    reproject(np.ascontiguousarray(data, np.float32), out, src_transform=src.affine, src_crs=src.rio_crs,
              src_nodata=np.nan, dst_transform=dst.affine, dst_crs=dst.rio_crs, dst_nodata=np.nan,
              resampling=RESAMPLING[resampling])
    return out


def to_fine_grid(data: np.ndarray, src: Grid, dst: Grid, method: str, resampling: str) -> np.ndarray:
    """Coarse values on the fine grid by `method` ('resize' as STF-LST, or 'reproject')."""
    if src == dst:
        return data.astype(np.float32, copy=True)
    if method == "resize":
        return resize_align_corners(data, dst.shape)
    if method == "reproject":
        return warp(data, src, dst, resampling)
    raise ConfigError(f"preprocess.regrid={method!r}: use 'resize' (STF-LST, faithful) or 'reproject'.")


def mask_to_fine_grid(mask: np.ndarray, src: Grid, dst: Grid, method: str) -> np.ndarray:
    """Where the coarse pixel under each fine pixel was observed (nearest neighbour)."""
    if src == dst:
        return mask.copy()
    if method == "resize":
        rows = np.floor(np.arange(dst.height) * src.height / dst.height).astype(int)
        cols = np.floor(np.arange(dst.width) * src.width / dst.width).astype(int)
        return mask[np.ix_(rows, cols)]
    return warp(np.where(mask, 1.0, 0.0), src, dst, "nearest") > 0.5


def _resize_scale(fine: Grid, coarse: Grid) -> tuple[float, float]:
    """Fine pixels per coarse pixel of the align_corners resize: the first and last centres meet, per axis."""
    return tuple(float(f - 1) / (c - 1) if c > 1 else float(f) for f, c in zip(fine.shape, coarse.shape))


def _coarse_to_fine_px(fine: Grid, coarse: Grid, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coarse pixel coordinates (corner at 0, centre at 0.5) to fine pixel coordinates through both georeferences."""
    x, y = coarse.affine @ (cols, rows)
    fx, fy = transform(coarse.rio_crs, fine.rio_crs, np.ravel(x), np.ravel(y))
    fc, fr = ~fine.affine @ (np.asarray(fx), np.asarray(fy))
    return np.reshape(fr, np.shape(rows)), np.reshape(fc, np.shape(cols))


def coarse_pixel_size(fine: Grid, coarse: Grid, method: str) -> tuple[float, float]:
    """(rows, cols) fine pixels per coarse pixel once `method` has put the coarse image on the fine grid.

    The resize stretches the array: its scale, whatever the georeference. The warp keeps the geometry: at the fine
    grid's centre, the spacing of coarse rows along the fine row axis and of coarse columns along the fine column
    axis (the coarse pixel area over its width or height, so a sheared or rotated coarse grid keeps its density).
    """
    if fine == coarse:
        return (1.0, 1.0)
    if method == "resize":
        return _resize_scale(fine, coarse)
    x, y = fine.affine @ (fine.width / 2, fine.height / 2)
    cx, cy = transform(fine.rio_crs, coarse.rio_crs, [x], [y])
    c0, r0 = ~coarse.affine @ (cx[0], cy[0])
    rows, cols = _coarse_to_fine_px(fine, coarse, np.array([r0, r0, r0, r0 + 1]), np.array([c0, c0 + 1, c0, c0]))
    col_step = np.array([rows[1] - rows[0], cols[1] - cols[0]])  # one coarse column: (d fine row, d fine col)
    row_step = np.array([rows[3] - rows[2], cols[3] - cols[2]])
    area = abs(col_step[0] * row_step[1] - col_step[1] * row_step[0])
    return (float(area / abs(col_step[1])), float(area / abs(row_step[0])))


def misregistration(fine: Grid, coarse: Grid, samples: int = 65) -> tuple[float, float]:
    """Mean and max distance in km between where the resize puts the coarse image and where its georeference says
    it is, over a samples × samples lattice of fine pixel centres (edges included; great-circle distances): the
    resize takes fine pixel (i, j) from coarse centre index (i/sy, j/sx) of the array."""
    if fine == coarse:
        return (0.0, 0.0)
    i = np.linspace(0, fine.height - 1, min(samples, fine.height))
    j = np.linspace(0, fine.width - 1, min(samples, fine.width))
    ii, jj = np.meshgrid(i, j, indexing="ij")
    sy, sx = _resize_scale(fine, coarse)
    taken_r, taken_c = _coarse_to_fine_px(fine, coarse, ii / sy + 0.5, jj / sx + 0.5)
    wgs84 = "EPSG:4326"
    lon, lat = transform(fine.rio_crs, wgs84, *(fine.affine @ (jj.ravel() + 0.5, ii.ravel() + 0.5)))
    tlon, tlat = transform(fine.rio_crs, wgs84, *(fine.affine @ (taken_c.ravel(), taken_r.ravel())))
    dist = _great_circle_m(np.asarray(lon), np.asarray(lat), np.asarray(tlon), np.asarray(tlat))
    return (float(np.mean(dist)) / 1000.0, float(np.max(dist)) / 1000.0)


def _great_circle_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Haversine distance in metres on the mean Earth sphere (within 0.5 % of the ellipsoid: enough for a shift)."""
    p1, p2, dlon = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _fmt(bounds) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"
