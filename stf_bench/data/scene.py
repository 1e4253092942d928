"""The plain data that crosses stage boundaries: a georeferenced grid and a dated MODIS-Landsat scene.

Sources yield `Scene`s in Kelvin with NaN as no data, each sensor on its own `Grid`; preprocessing regrids and fills;
the store writes them. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.crs import CRS


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: CRS (WKT), affine transform (GDAL order a, b, c, d, e, f) and shape."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    height: int
    width: int

    @classmethod
    def from_rasterio(cls, crs: CRS | str, transform: Affine, height: int, width: int) -> Grid:
        wkt = crs.to_wkt() if isinstance(crs, CRS) else CRS.from_user_input(crs).to_wkt()
        return cls(wkt, tuple(float(v) for v in tuple(transform)[:6]), int(height), int(width))

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def rio_crs(self) -> CRS:
        return CRS.from_wkt(self.crs)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.transform[0]), abs(self.transform[4]))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        a, _, c, _, e, f = self.transform
        xs = (c, c + a * self.width)
        ys = (f, f + e * self.height)
        return (min(xs), min(ys), max(xs), max(ys))

    def with_shape(self, height: int, width: int) -> Grid:
        """The same footprint divided into height x width pixels."""
        left, bottom, right, top = self.bounds
        transform = Affine((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top)
        return Grid(self.crs, tuple(transform)[:6], height, width)

    def window(self, row: int, col: int, height: int, width: int) -> Grid:
        """The sub-grid starting at (row, col)."""
        return Grid(self.crs, tuple(self.affine @ Affine.translation(col, row))[:6], height, width)

    def to_json(self) -> dict:
        return {"crs": self.crs, "transform": list(self.transform), "height": self.height, "width": self.width}

    @classmethod
    def from_json(cls, d: dict) -> Grid:
        return cls(d["crs"], tuple(d["transform"]), int(d["height"]), int(d["width"]))


@dataclass
class Scene:
    """One date: a fine (Landsat) and a coarse (MODIS) LST image, each on its own grid.

    Arrays are float32 Kelvin with NaN where there is no data. `*_valid` marks observed pixels; it starts as
    `isfinite` and stays the observed mask after gap filling, so scoring never counts a filled pixel.
    `*_filled` marks pixels that preprocessing filled. `implausible` counts the values the source dropped as outside
    the plausible LST range (undeclared fill values), per sensor with the fraction of the file's pixels, so the
    prepare table can show what was dropped.
    """

    date: dt.date
    fine: np.ndarray
    fine_grid: Grid
    coarse: np.ndarray
    coarse_grid: Grid
    fine_source: str = ""
    coarse_source: str = ""
    fine_valid: np.ndarray | None = None
    coarse_valid: np.ndarray | None = None
    fine_filled: np.ndarray | None = None
    coarse_filled: np.ndarray | None = None
    implausible: dict = field(default_factory=lambda: {"fine": 0, "coarse": 0, "fine_fraction": 0.0,
                                                        "coarse_fraction": 0.0})
    units: str = field(default="K", init=False)

    def __post_init__(self) -> None:
        self.fine = np.asarray(self.fine, dtype=np.float32)
        self.coarse = np.asarray(self.coarse, dtype=np.float32)
        if self.fine.shape != self.fine_grid.shape:
            raise ValueError(f"{self.fine_source}: array shape {self.fine.shape} != grid shape {self.fine_grid.shape}")
        if self.coarse.shape != self.coarse_grid.shape:
            raise ValueError(
                f"{self.coarse_source}: array shape {self.coarse.shape} != grid shape {self.coarse_grid.shape}"
            )
        if self.fine_valid is None:
            self.fine_valid = np.isfinite(self.fine)
        if self.coarse_valid is None:
            self.coarse_valid = np.isfinite(self.coarse)
        if self.fine_filled is None:
            self.fine_filled = np.zeros(self.fine.shape, bool)
        if self.coarse_filled is None:
            self.coarse_filled = np.zeros(self.coarse.shape, bool)

    @property
    def key(self) -> str:
        return self.date.strftime("%Y%m%d")
