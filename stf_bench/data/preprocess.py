"""From source Scenes (each sensor on its own grid, with gaps) to co-registered, optionally gap-filled stacks.

The observed masks are carried through untouched: filling changes values, never what counts as observed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from stf_bench.data.gapfill import progressive_focal_mean, temporal_linear
from stf_bench.data.regrid import (RESAMPLING, check_overlap, coarse_pixel_size, mask_to_fine_grid, misregistration,
                                   to_fine_grid, warp)
from stf_bench.data.scene import Grid, Scene
from stf_bench.errors import ConfigError

log = logging.getLogger(__name__)

FILLS = ("none", "focal", "temporal")
FINE, COARSE = 0, 1


@dataclass
class Prepared:
    """All dates on one fine grid: values (T,2,H,W) float32 K with NaN, observed and filled masks (T,2,H,W), and
    per date the source's count of implausible values it dropped (`Scene.implausible`).

    `coarse_block`: (rows, cols) fine pixels per coarse pixel as placed, averaged over the dates. `misregistration`:
    per date (mean, max) km by which the resize misplaces the coarse image; None for a georeferenced placement.
    """

    dates: list
    grid: Grid
    values: np.ndarray
    observed: np.ndarray
    filled: np.ndarray
    sources: list[tuple[str, str]]
    implausible: list[dict]
    coarse_block: tuple[float, float] = (1.0, 1.0)
    misregistration: list[tuple[float, float]] | None = None


class Preprocessor:
    """Regrid the coarse images onto the fine grid and fill gaps, per the preprocessing variant's config."""

    def __init__(self, name: str, regrid: str = "reproject", resampling: str = "bilinear", fine_fill: str = "none",
                 coarse_fill: str = "none", temporal_max_days: float = 32, temporal_fallback: str = "focal",
                 min_coverage: float = 0.5, misregistration_warn_m: float | None = None) -> None:
        for key, value in (("fine_fill", fine_fill), ("coarse_fill", coarse_fill)):
            if value not in FILLS:
                raise ConfigError(f"preprocess.{key}={value!r}: use one of {', '.join(FILLS)}.")
        if regrid not in ("resize", "reproject"):
            raise ConfigError(f"preprocess.regrid={regrid!r}: use resize (STF-LST, faithful) or reproject.")
        if resampling not in RESAMPLING:
            raise ConfigError(f"preprocess.resampling={resampling!r}: use one of {', '.join(RESAMPLING)}.")
        if temporal_fallback not in ("focal", "none"):
            raise ConfigError(f"preprocess.temporal_fallback={temporal_fallback!r}: use focal or none.")
        self.name = name
        self.regrid, self.resampling = regrid, resampling
        self.fill = {FINE: fine_fill, COARSE: coarse_fill}
        self.temporal_max_days, self.temporal_fallback = temporal_max_days, temporal_fallback
        self.min_coverage = min_coverage
        self.misregistration_warn_m = misregistration_warn_m

    def __call__(self, scenes: list[Scene]) -> Prepared:
        grid = _common_fine_grid(scenes)
        t, (h, w) = len(scenes), grid.shape
        values = np.full((t, 2, h, w), np.nan, np.float32)
        observed = np.zeros((t, 2, h, w), bool)
        for k, scene in enumerate(tqdm(scenes, desc="regridding", unit="date")):
            fine, fine_obs = scene.fine, scene.fine_valid
            if scene.fine_grid != grid:
                fine = warp(fine, scene.fine_grid, grid, "nearest")
                fine_obs = np.isfinite(fine)
            check_overlap(grid, scene.coarse_grid, scene.fine_source, scene.coarse_source, self.min_coverage)
            # Interpolation needs a hole-free coarse image: fill at native resolution (the STF-LST order), then
            # put the holes back unless this variant keeps the focal fill.
            coarse_native = progressive_focal_mean(scene.coarse)
            coarse = to_fine_grid(coarse_native, scene.coarse_grid, grid, self.regrid, self.resampling)
            coarse_obs = mask_to_fine_grid(scene.coarse_valid, scene.coarse_grid, grid, self.regrid)
            if self.fill[COARSE] != "focal":
                coarse[~coarse_obs] = np.nan
            values[k, FINE], values[k, COARSE] = fine, coarse
            observed[k, FINE], observed[k, COARSE] = fine_obs, coarse_obs & np.isfinite(coarse)
        days = np.array([s.date.toordinal() for s in scenes], dtype=np.float64)
        for band in (FINE, COARSE):
            if self.fill[band] == "temporal":
                values[:, band] = temporal_linear(values[:, band], days, self.temporal_max_days)
            if self.fill[band] == "focal" or (self.fill[band] == "temporal" and self.temporal_fallback == "focal"):
                for k in tqdm(range(t), desc=f"filling {'fine' if band == FINE else 'coarse'}", unit="date"):
                    values[k, band] = progressive_focal_mean(values[k, band])
        filled = np.isfinite(values) & ~observed
        return Prepared([s.date for s in scenes], grid, values, observed, filled,
                        [(s.fine_source, s.coarse_source) for s in scenes], [s.implausible for s in scenes],
                        *self._geometry(scenes, grid))

    def _geometry(self, scenes: list[Scene], grid: Grid):
        """The coarse block size as placed and, for the resize, its misregistration per date (warned about)."""
        sizes = {g: coarse_pixel_size(grid, g, self.regrid) for g in {s.coarse_grid for s in scenes}}
        block = tuple(round(float(np.mean([sizes[s.coarse_grid][a] for s in scenes])), 3) for a in (0, 1))
        if self.regrid != "resize":
            return block, None
        shifts = {g: misregistration(grid, g) for g in sizes}
        per_date = [shifts[s.coarse_grid] for s in scenes]
        limit = self.misregistration_warn_m
        bad = [s.key for s, (mean, _) in zip(scenes, per_date) if limit is not None and 1000 * mean > limit]
        if bad:
            log.warning("preprocess=%s resizes MODIS onto the Landsat array without its georeference: it misplaces "
                        "MODIS by %.2f km on average (max %.2f km), more than preprocess.misregistration_warn_m=%g m "
                        "on %d of %d dates. Use it to reproduce the published dataset only; preprocess=reproject "
                        "places MODIS by its georeference.", self.name, np.mean([m for m, _ in per_date]),
                        max(x for _, x in per_date), limit, len(bad), len(scenes))
        return block, per_date


def _common_fine_grid(scenes: list[Scene]) -> Grid:
    """The fine grid most dates share; others are warped onto it (with a warning)."""
    grids = [s.fine_grid for s in scenes]
    grid = max(set(grids), key=grids.count)
    odd = [s.key for s in scenes if s.fine_grid != grid]
    if odd:
        log.warning("%d date(s) have another fine grid and are resampled onto the common one: %s",
                    len(odd), ", ".join(odd))
    return grid
