"""Putting the coarse image on the fine grid: the STF-LST resize (faithful) or a georeferenced warp.

Both check first that the two footprints overlap, so a wrong CRS fails loudly instead of pairing unrelated pixels.
"""

from __future__ import annotations

import logging

import numpy as np
from rasterio.warp import Resampling, reproject, transform_bounds

from stf_bench.data.scene import Grid
from stf_bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

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


def _fmt(bounds) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"
