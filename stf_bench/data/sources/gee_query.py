"""What stf_bench asks Earth Engine: the STF-LST recipe as real `earthengine-api` graphs.

Landsat 8/9 Collection 2 Level 2 and MOD11A1 are turned into Kelvin LST with their QA masks; a per-day catalog gives,
for each acquisition day, the share of the *region* (not of the scene footprint) that has valid pixels on the day's
mosaic, so several path/rows covering the region count together; download images fill Landsat gaps by linear
interpolation in time between the nearest clear neighbours. Nothing here calls the network: these functions only build
`ee` objects, which the download layer evaluates and which the tests inspect in serialized form.

The neighbours of an interpolation are chosen by the caller from the catalog (client side) and passed as asset ids
with their time offsets in days, so the server evaluates the interpolation without re-running the availability
filter over the whole date range for every file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ee

LST = "LST"
OBSERVED = "observed"
ASSET = "stf_asset"  # the asset id (system:id) of an image, kept through the processing
NODATA = -9999.0  # written by the server under masks; the client turns it into NaN (real LST is never negative)
MAX_PIXELS = 1e10


@dataclass(frozen=True)
class LandsatSpec:
    """Landsat Collection 2 Level 2 thermal band to Kelvin, and its QA_PIXEL cloud mask.

    `qa_mask_bits` lists the QA_PIXEL bits that mark a pixel unusable (0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
    4 cloud shadow, 5 snow); a pixel with any of them set is masked.
    """

    collections: tuple[str, ...]
    band: str
    scale_factor: float
    add_offset: float
    qa_band: str
    qa_mask_bits: tuple[int, ...]
    min_valid_percent: float

    @property
    def qa_bitmask(self) -> int:
        return sum(1 << b for b in sorted(set(self.qa_mask_bits)))


@dataclass(frozen=True)
class QcRule:
    """The unsigned field in bits `first..last` of the QC band must be <= `max_value` for a pixel to be kept."""

    first: int
    last: int
    max_value: int

    @property
    def field_mask(self) -> int:
        return (1 << (self.last - self.first + 1)) - 1


@dataclass(frozen=True)
class ModisSpec:
    """MODIS daily LST (MOD11A1, optionally MYD11A1) to Kelvin, kept where every QC rule holds.

    `collections` are in priority order: a later collection only serves days the earlier ones do not.
    """

    collections: tuple[str, ...]
    band: str
    scale_factor: float
    add_offset: float
    qa_band: str
    qc_rules: tuple[QcRule, ...]
    min_valid_percent: float


@dataclass(frozen=True)
class SensorGrid:
    """The pixel grid Earth Engine computes a sensor on: an Earth Engine CRS code and a GDAL-order affine."""

    crs: str
    transform: tuple[float, float, float, float, float, float]

    @property
    def crs_transform(self) -> list[float]:
        return list(self.transform)


def region_geometry(geojson: dict) -> ee.Geometry:
    """A lon/lat GeoJSON geometry with straight (planar) edges, as a bounding box drawn in lon/lat means."""
    return ee.Geometry(geojson, "EPSG:4326", False)


def landsat_lst(spec: LandsatSpec, image: ee.Image) -> ee.Image:
    """One Landsat scene as a single masked Kelvin band `LST` (DN * scale + offset), QA bits of `spec` masked."""
    clear = image.select(spec.qa_band).bitwiseAnd(spec.qa_bitmask).eq(0)
    lst = image.select(spec.band).multiply(spec.scale_factor).add(spec.add_offset).updateMask(clear).rename(LST)
    return ee.Image(lst.copyProperties(image, ["system:time_start"])).set(ASSET, image.get("system:id"))


def modis_lst(spec: ModisSpec, image: ee.Image) -> ee.Image:
    """One MODIS day as a single masked Kelvin band `LST`, kept where all QC rules hold."""
    qc = image.select(spec.qa_band)
    keep = None
    for rule in spec.qc_rules:
        ok = qc.rightShift(rule.first).bitwiseAnd(rule.field_mask).lte(rule.max_value)
        keep = ok if keep is None else keep.And(ok)
    lst = image.select(spec.band).multiply(spec.scale_factor).add(spec.add_offset)
    if keep is not None:
        lst = lst.updateMask(keep)
    lst = lst.rename(LST)
    return ee.Image(lst.copyProperties(image, ["system:time_start"])).set(ASSET, image.get("system:id"))


def sensor_collection(collection_id: str, region: ee.Geometry, start: str, end: str, to_lst) -> ee.ImageCollection:
    """One Earth Engine collection over the region and dates (end exclusive), mapped to Kelvin LST by `to_lst`."""
    return ee.ImageCollection(collection_id).filterBounds(region).filterDate(start, end).map(to_lst)


def landsat_collection(spec: LandsatSpec, region: ee.Geometry, start: str, end: str) -> ee.ImageCollection:
    """All Landsat collections of `spec` merged: scenes of one day from different path/rows are mosaicked together."""
    merged = None
    for cid in spec.collections:
        col = sensor_collection(cid, region, start, end, lambda im: landsat_lst(spec, im))
        merged = col if merged is None else merged.merge(col)
    return merged


def distinct_days(collection: ee.ImageCollection) -> ee.List:
    """The UTC acquisition days ('YYYY-MM-dd') present in a collection."""
    return collection.aggregate_array("system:time_start").map(lambda t: ee.Date(t).format("YYYY-MM-dd")).distinct()


def valid_fraction(image: ee.Image, region: ee.Geometry, grid: SensorGrid) -> ee.Number:
    """Share of the region's pixels (on the download grid) where `image` is unmasked.

    Masked pixels and pixels outside the image footprint both count as invalid: `unmask(0, False)` extends the mask
    image to the whole region, so a scene covering half the region scores at most 0.5.
    """
    valid = image.mask().gt(0).unmask(0, False).rename("valid")
    stats = valid.reduceRegion(
        reducer=ee.Reducer.mean(), geometry=region, crs=grid.crs, crsTransform=grid.crs_transform, maxPixels=MAX_PIXELS
    )
    return ee.Number(stats.get("valid"))


def daily_catalog(collection: ee.ImageCollection, days, region: ee.Geometry, grid: SensorGrid) -> ee.List:
    """For each day: [day, valid percent of the region on the day's mosaic, [[asset id, time_start ms], ...]].

    A fully masked placeholder joins each day's mosaic, so a day without any image scores 0 % instead of failing
    the whole request on a mosaic with no band.
    """
    nothing = ee.ImageCollection([ee.Image.constant(0).rename(LST).updateMask(0)])

    def one_day(day):
        start = ee.Date(day)
        of_day = collection.filterDate(start, start.advance(1, "day"))
        percent = valid_fraction(of_day.merge(nothing).mosaic().select(LST), region, grid).multiply(100)
        images = of_day.reduceColumns(ee.Reducer.toList(2), [ASSET, "system:time_start"]).get("list")
        return ee.List([day, percent, images])

    return ee.List(days).map(one_day)


def landsat_catalog(spec: LandsatSpec, region: ee.Geometry, start: str, end: str, grid: SensorGrid) -> ee.List:
    """The per-day catalog of every Landsat acquisition over the region between `start` and `end` (exclusive)."""
    col = landsat_collection(spec, region, start, end)
    return daily_catalog(col, distinct_days(col), region, grid)


def modis_catalog(spec: ModisSpec, collection_id: str, days: Sequence[str], region: ee.Geometry,
                  grid: SensorGrid) -> ee.List:
    """The per-day catalog of one MODIS collection, on the given days only (those with a usable Landsat scene)."""
    first, last = min(days), max(days)
    end = ee.Date(last).advance(1, "day")
    col = sensor_collection(collection_id, region, first, end, lambda im: modis_lst(spec, im))
    return daily_catalog(col, list(days), region, grid)


def _neighbour_mosaic(spec: LandsatSpec, neighbours: Sequence[tuple[str, float]]) -> ee.Image:
    """Mosaic of neighbour scenes with a `dt` band (days from the target), nearest scene on top.

    `neighbours` must be ordered farthest first: a mosaic keeps, per pixel, the last unmasked image.
    """
    images = []
    for asset, dt_days in neighbours:
        lst = landsat_lst(spec, ee.Image(asset))
        offset = ee.Image.constant(float(dt_days)).toDouble().updateMask(lst.mask()).rename("dt")
        images.append(lst.addBands(offset))
    return ee.ImageCollection.fromImages(images).mosaic()


def landsat_download_image(spec: LandsatSpec, asset: str, before: Sequence[tuple[str, float]],
                           after: Sequence[tuple[str, float]]) -> ee.Image:
    """Bands `LST` (K, gaps filled in time where possible) and `observed` (1 where the scene itself saw the pixel).

    A gap is filled with before + (after - before) * (0 - dt1) / (dt2 - dt1) from the nearest clear neighbours on
    both sides (dt in days, before < 0 < after); a pixel with a clear neighbour on one side only stays a gap.
    `before` and `after` are ordered farthest first. Masked pixels come back as NODATA.
    """
    target = landsat_lst(spec, ee.Image(asset))
    observed = target.mask().rename(OBSERVED)
    lst = target
    if before and after:
        b, a = _neighbour_mosaic(spec, before), _neighbour_mosaic(spec, after)
        ratio = b.select("dt").multiply(-1).divide(a.select("dt").subtract(b.select("dt")))
        interpolated = b.select(LST).add(a.select(LST).subtract(b.select(LST)).multiply(ratio))
        lst = target.unmask(interpolated)
    return ee.Image.cat([lst.rename(LST), observed]).toFloat().unmask(NODATA, False)


def modis_download_image(spec: ModisSpec, asset: str) -> ee.Image:
    """Band `LST` (K) of one MODIS day; masked pixels come back as NODATA."""
    return modis_lst(spec, ee.Image(asset)).toFloat().unmask(NODATA, False)
