"""The Earth Engine recipe as real earthengine-api graphs, checked offline.

The graphs are built with the real `ee` client (initialized with the algorithm list shipped in the wheel) and checked
in serialized form. The masks and the temporal interpolation are also *evaluated* on small numpy images by a tiny
interpreter of the few Earth Engine image operations they use (per-pixel arithmetic, masks, mosaic), so the tests
check what the graphs compute, not only which constants they contain.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path

import ee
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from stf_bench.data.sources import gee_query as q
from stf_bench.data.sources.gee import Day, GeeSource, plan_downloads
from stf_bench.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
BBOX = [1.7505414127167631, 47.76054614894737, 2.126342587283237, 48.01326285105263]
L8 = "LANDSAT/LC08/C02/T1_L2"


def compose_source(dataset: str = "stf_lst_gee", *overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("prepare", overrides=[f"dataset={dataset}", *overrides])
    return cfg.dataset.source


def make_source(dataset: str = "stf_lst_gee", *overrides: str) -> GeeSource:
    """GeeSource from the composed config; Hydra's wrapper around a constructor error is removed."""
    try:
        return instantiate(compose_source(dataset, *overrides))
    except InstantiationException as exc:
        raise exc.__cause__ from None


@pytest.fixture(scope="module")
def source() -> GeeSource:
    return make_source()


# -- reading serialized graphs -----------------------------------------------------------------------------------------
@dataclass
class Call:
    name: str
    args: dict


@dataclass
class Fn:
    params: list
    body: object


@dataclass
class Arg:
    name: str


def graph(obj):
    """The serialized form of an ee object as nested Call/Fn/Arg nodes and plain constants."""
    enc = ee.serializer.encode(obj, for_cloud_api=True)
    values = enc["values"]

    def node(v):
        if "valueReference" in v:
            return node(values[v["valueReference"]])
        if "constantValue" in v:
            return v["constantValue"]
        if "arrayValue" in v:
            return [node(x) for x in v["arrayValue"]["values"]]
        if "dictionaryValue" in v:
            return {k: node(x) for k, x in v["dictionaryValue"]["values"].items()}
        if "functionInvocationValue" in v:
            f = v["functionInvocationValue"]
            return Call(f["functionName"], {k: node(a) for k, a in f.get("arguments", {}).items()})
        if "functionDefinitionValue" in v:
            f = v["functionDefinitionValue"]
            return Fn(f["argumentNames"], node(values[f["body"]]))
        if "argumentReference" in v:
            return Arg(v["argumentReference"])
        raise AssertionError(f"unknown node {v}")

    return node(values[enc["result"]])


def calls(tree, name: str) -> list[Call]:
    """Every invocation of `name` anywhere in the tree."""
    found = []

    def walk(n):
        if isinstance(n, Call):
            if n.name == name:
                found.append(n)
            for a in n.args.values():
                walk(a)
        elif isinstance(n, Fn):
            walk(n.body)
        elif isinstance(n, list):
            for x in n:
                walk(x)
        elif isinstance(n, dict):
            for x in n.values():
                walk(x)

    walk(tree)
    return found


def constant(n):
    """The value of Image.constant(x) or of a plain constant."""
    if isinstance(n, Call) and n.name == "Image.constant":
        return n.args["value"]
    return n


# -- a tiny evaluator of Earth Engine image graphs ---------------------------------------------------------------------
_BINARY = {
    "Image.add": np.add, "Image.subtract": np.subtract, "Image.multiply": np.multiply, "Image.divide": np.divide,
    "Image.bitwiseAnd": lambda a, b: np.bitwise_and(a.astype(np.int64), b.astype(np.int64)),
    "Image.rightShift": lambda a, b: np.right_shift(a.astype(np.int64), b.astype(np.int64)),
    "Image.eq": lambda a, b: (a == b).astype(float), "Image.lte": lambda a, b: (a <= b).astype(float),
    "Image.gt": lambda a, b: (a > b).astype(float), "Image.and": lambda a, b: ((a != 0) & (b != 0)).astype(float),
}


def evaluate(n, world: dict):
    """Evaluate an image graph on numpy. An image is {band: (values, valid)}; `world` maps asset ids to images.

    Semantics follow the Earth Engine docs: binary ops combine masks and broadcast one-band images, updateMask
    narrows the mask, unmask fills masked pixels from another image, a mosaic keeps the last unmasked value,
    reduceRegion(mean) averages over every pixel of these small test images. Footprints are not modelled: a test
    image's masked pixels stand for both masks and pixels outside the footprint.
    """
    if isinstance(n, list):
        return [evaluate(x, world) for x in n]
    if not isinstance(n, Call):
        return n
    a = {k: evaluate(v, world) for k, v in n.args.items()}
    name = n.name
    if name == "Image.load":
        return world[a["id"]]
    if name == "Image.constant":
        return {"constant": (np.asarray(a["value"], float), np.asarray(True))}
    if name in _BINARY:
        img1, img2 = a["image1"], a["image2"]
        other = list(img2.values())
        out = {}
        for k, (band, (v1, m1)) in enumerate(img1.items()):
            v2, m2 = other[k] if len(other) > 1 else other[0]
            out[band] = (_BINARY[name](v1, v2).astype(float), m1 & m2)
        return out
    if name == "Image.select":
        return {b: a["input"][b] for b in a["bandSelectors"]}
    if name == "Image.rename":
        return dict(zip(a["names"], a["input"].values()))
    if name == "Image.updateMask":
        (mv, mm), = a["mask"].values()
        return {b: (v, m & mm & (mv != 0)) for b, (v, m) in a["image"].items()}
    if name == "Image.mask":
        return {b: (m.astype(float), np.ones_like(m, bool)) for b, (v, m) in a["image"].items()}
    if name == "Image.unmask":
        fill = list(a["value"].values()) if isinstance(a["value"], dict) else [(np.asarray(a["value"], float),
                                                                                np.asarray(True))]
        out = {}
        for k, (band, (v, m)) in enumerate(a["input"].items()):
            fv, fm = fill[k] if len(fill) > 1 else fill[0]
            out[band] = (np.where(m, v, fv), m | (np.broadcast_to(fm, m.shape) & ~m))
        return out
    if name in ("Image.toFloat", "Image.toDouble"):
        return a["value"]
    if name == "Image.addBands":
        return {**a["dstImg"], **a["srcImg"]}
    if name in ("Image.copyProperties", "Element.copyProperties"):
        return a["destination"]
    if name == "Element.set":
        return a["object"]
    if name == "Element.get":
        return None
    if name == "ImageCollection.fromImages":
        return a["images"]
    if name == "ImageCollection.mosaic":
        out = {}
        for img in a["collection"]:
            for band, (v, m) in img.items():
                if band not in out:
                    out[band] = (np.zeros(m.shape), np.zeros(m.shape, bool))
                ov, om = out[band]
                out[band] = (np.where(m, v, ov), om | m)
        return out
    if name == "Image.reduceRegion":
        assert a["reducer"] == {"mean": True}
        return {b: float(v[m].mean()) for b, (v, m) in a["image"].items()}
    if name == "Reducer.mean":
        return {"mean": True}
    if name == "Dictionary.get":
        return a["dictionary"][a["key"]]
    return a  # geometry, projection and other arguments that the evaluator passes through


def run(obj, world):
    return evaluate(graph(obj), world)


def landsat_pixels(qa: list[int], dn: float = 44000.0) -> dict:
    qa = np.asarray(qa, float)
    valid = np.ones(qa.shape, bool)
    return {"ST_B10": (np.full(qa.shape, dn), valid), "QA_PIXEL": (qa, valid)}


# -- tests ----------------------------------------------------------------------------------------------------------
def test_published_grid_is_reproduced(source):
    """The snapped fine grid is the published STF-LST grid: 950 x 950 px of 30 m at (406365, 5318535), EPSG:32631."""
    g = source.fine_grid
    assert (g.height, g.width) == (950, 950)
    assert g.transform == (30.0, 0.0, 406365.0, 0.0, -30.0, 5318535.0)
    assert g.rio_crs.to_epsg() == 32631 and source.fine_crs == "EPSG:32631"
    # MODIS sinusoidal on the sphere: x = R lon cos(lat), y = R lat; the box spans x 130213.8..158941.4 m (west edge
    # at the north, east edge at the south) and y 5310736.4..5338837.3 m, snapped outward to whole kilometres
    c = source.coarse_grid
    assert source.coarse_crs == "SR-ORG:6974" and "+R=6371007.181" in c.rio_crs.to_proj4()
    assert c.transform == (1000.0, 0.0, 130000.0, 0.0, -1000.0, 5339000.0) and c.shape == (29, 29)


def test_auto_crs_and_native_modis_grid():
    src = make_source("gee", f"dataset.source.region={{bbox: {BBOX}}}", "dataset.source.start=2016-01-01",
                      "dataset.source.end=2017-01-01")
    assert src.fine_crs == "EPSG:32631" and src.fine_grid.transform[2] == 406365.0
    # native MODIS pixels: the grid origin is a whole number of pixels from the tile grid's origin (-20015109.354)
    x0 = src.coarse_grid.transform[2]
    assert src.coarse_grid.res[0] == pytest.approx(926.625433)
    assert ((x0 + 20015109.354) / 926.625433) == pytest.approx(round((x0 + 20015109.354) / 926.625433), abs=1e-3)


def test_fingerprint_identifies_data_not_credentials(source):
    fp = source.fingerprint()
    text = json.dumps(fp)
    assert "project" not in text and "service_account" not in text
    assert list(fp["landsat"]["qa_mask_bits"]) == [0, 1, 2, 3, 4, 5] and fp["start"] == "2013-03-18"
    other = make_source("stf_lst_gee", "dataset.source.project=someone-else")
    assert other.fingerprint() == fp
    shorter = make_source("stf_lst_gee", "dataset.source.end=2020-01-01")
    assert shorter.fingerprint() != fp


def test_landsat_mask_bits_and_scale(ee_offline, source):
    """Bits 0-5 (fill, dilated cloud, cirrus, cloud, shadow, snow) mask a pixel; 6-7 (clear, water) do not."""
    spec = source.landsat
    assert spec.qa_bitmask == 0b111111
    qa = [0, 1, 2, 4, 8, 16, 32, 64, 128, 64 + 16]
    img = q.landsat_lst(spec, ee.Image(f"{L8}/LC08_199027_20160205"))
    (values, valid), = run(img, {f"{L8}/LC08_199027_20160205": landsat_pixels(qa)})["LST"],
    assert valid.tolist() == [True, False, False, False, False, False, False, True, True, False]
    assert values[0] == pytest.approx(44000 * 0.00341802 + 149.0)  # 299.39288 K
    # the original scripts' defect: they tested bits 3 and 5 only, so shadow (4), dilated cloud (1), cirrus (2) passed
    keep_snow = replace(spec, qa_mask_bits=(0, 1, 2, 3, 4))
    (_, valid), = run(q.landsat_lst(keep_snow, ee.Image("X/x")), {"X/x": landsat_pixels([32, 16])})["LST"],
    assert valid.tolist() == [True, False]
    g = graph(img)
    assert [constant(c.args["image2"]) for c in calls(g, "Image.bitwiseAnd")] == [63]
    assert sorted(c.args["bandSelectors"][0] for c in calls(g, "Image.select")) == ["QA_PIXEL", "ST_B10"]


def test_modis_qc_rules_and_scale(ee_offline, source):
    """Kept: LST produced (bits 0-1 <= 1), good quality (bits 2-3 = 0), error <= 3 K (bits 6-7 <= 2)."""
    spec = source.modis
    qc = [0b00000000, 0b00000001, 0b00000010, 0b00000011, 0b00000100, 0b01000000, 0b10000000, 0b11000000,
          0b00110000]
    asset = "MODIS/061/MOD11A1/2016_02_05"
    world = {asset: {"LST_Day_1km": (np.full(len(qc), 14500.0), np.ones(len(qc), bool)),
                     "QC_Day": (np.asarray(qc, float), np.ones(len(qc), bool))}}
    (values, valid), = run(q.modis_lst(spec, ee.Image(asset)), world)["LST"],
    assert valid.tolist() == [True, True, False, False, False, True, True, False, True]
    assert values[0] == pytest.approx(290.0)  # 14500 * 0.02 K
    shifts = sorted((constant(c.args["image2"])) for c in calls(graph(q.modis_lst(spec, ee.Image(asset))),
                                                                 "Image.rightShift"))
    assert shifts == [0, 2, 6]


def test_valid_fraction_counts_the_region_not_the_footprint(ee_offline, source):
    """Two path/rows of one day are mosaicked; pixels outside both footprints count as invalid."""
    grid = q.SensorGrid(source.fine_crs, source.fine_grid.transform)
    region = q.region_geometry(source.region)
    a, b = f"{L8}/LC08_199027_20160205", f"{L8}/LC08_198027_20160205"
    day = ee.ImageCollection.fromImages([q.landsat_lst(source.landsat, ee.Image(a)),
                                         q.landsat_lst(source.landsat, ee.Image(b))]).mosaic().select(q.LST)
    # 10 pixels: A sees 0-3 (pixel 2 cloudy), B sees 3-6, nothing covers 7-9 (outside both footprints)
    inside_a = np.arange(10) < 4
    inside_b = (np.arange(10) >= 3) & (np.arange(10) < 7)
    world = {a: {"ST_B10": (np.full(10, 44000.0), inside_a), "QA_PIXEL": (np.where(np.arange(10) == 2, 8.0, 0.0),
                                                                          inside_a)},
             b: {"ST_B10": (np.full(10, 44000.0), inside_b), "QA_PIXEL": (np.zeros(10), inside_b)}}
    fraction = run(q.valid_fraction(day, region, grid), world)
    assert fraction == pytest.approx(0.6)
    g = graph(q.valid_fraction(day, region, grid))
    reduce, = calls(g, "Image.reduceRegion")
    assert reduce.args["crsTransform"] == [30.0, 0.0, 406365.0, 0.0, -30.0, 5318535.0]
    assert reduce.args["geometry"].args["coordinates"] == [[[BBOX[0], BBOX[1]], [BBOX[2], BBOX[1]],
                                                            [BBOX[2], BBOX[3]], [BBOX[0], BBOX[3]],
                                                            [BBOX[0], BBOX[1]]]]
    unmask, = calls(g, "Image.unmask")
    assert constant(unmask.args["value"]) == 0 and unmask.args["sameFootprint"] is False


def test_landsat_catalog_graph(ee_offline, source):
    grid = q.SensorGrid(source.fine_crs, source.fine_grid.transform)
    region = q.region_geometry(source.region)
    g = graph(q.landsat_catalog(source.landsat, region, "2016-01-01", "2017-01-01", grid))
    assert {c.args["id"] for c in calls(g, "ImageCollection.load")} == {L8}
    ranges = [(c.args["start"], c.args["end"]) for c in calls(g, "DateRange")]
    assert ("2016-01-01", "2017-01-01") in ranges
    assert any(c.args["rightValue"].args["geometry"].args["coordinates"][0][2] == [BBOX[2], BBOX[3]]
               for c in calls(g, "Filter.intersects"))
    # the collection appears twice in the tree (listing the days, then inside the per-day function)
    assert {c.args["format"] for c in calls(g, "Date.format")} == {"YYYY-MM-dd"}
    assert {(c.args["delta"], c.args["unit"]) for c in calls(g, "Date.advance")} == {(1, "day")}
    assert [c.args["selectors"] for c in calls(g, "Collection.reduceColumns")] == [[q.ASSET, "system:time_start"]]
    assert len(calls(g, "ImageCollection.mosaic")) == 1 and len(calls(g, "Image.reduceRegion")) == 1
    assert {constant(c.args["image2"]) for c in calls(g, "Image.bitwiseAnd")} == {63}
    # a fully masked placeholder joins each day's mosaic, so a day with no image scores 0 instead of failing
    merge, = calls(g, "ImageCollection.merge")
    placeholder, = merge.args["collection2"].args["images"]
    assert placeholder.name == "Image.updateMask" and constant(placeholder.args["mask"]) == 0
    two = replace(source.landsat, collections=(L8, "LANDSAT/LC09/C02/T1_L2"))
    g2 = graph(q.landsat_catalog(two, region, "2022-01-01", "2023-01-01", grid))
    assert {c.args["id"] for c in calls(g2, "ImageCollection.load")} == {L8, "LANDSAT/LC09/C02/T1_L2"}


def test_modis_catalog_graph_on_given_days(ee_offline, source):
    grid = q.SensorGrid(source.coarse_crs, source.coarse_grid.transform)
    g = graph(q.modis_catalog(source.modis, "MODIS/061/MOD11A1", ["2016-02-05", "2016-03-08"],
                              q.region_geometry(source.region), grid))
    assert {c.args["id"] for c in calls(g, "ImageCollection.load")} == {"MODIS/061/MOD11A1"}
    mapped, = calls(g, "List.map")
    assert mapped.args["list"] == ["2016-02-05", "2016-03-08"]
    reduce, = calls(g, "Image.reduceRegion")
    assert reduce.args["crs"].args["crs"] == "SR-ORG:6974" and reduce.args["crsTransform"][0] == 1000.0
    assert {constant(c.args["image2"]) for c in calls(g, "Image.lte")} == {0, 1, 2}
    assert any(constant(c.args["image2"]) == 0.02 for c in calls(g, "Image.multiply"))


def test_temporal_interpolation_values(ee_offline, source):
    """Gaps take before + (after - before) * -dt1 / (dt2 - dt1) from the nearest clear neighbours on both sides."""
    spec = source.landsat
    clear, cloud = 0.0, 8.0
    dn = lambda k: (k - 149.0) / 0.00341802  # noqa: E731  DN that scales to k Kelvin
    px = lambda *v: np.asarray(v, float)  # noqa: E731
    on = np.ones(4, bool)
    world = {  # pixel 0 observed; 1 has neighbours at -4 and +12; 2 only at -20 (-4 cloudy) and +12; 3 no after
        "T": {"ST_B10": (px(dn(300), 0, 0, 0), on), "QA_PIXEL": (px(clear, cloud, cloud, cloud), on)},
        "B20": {"ST_B10": (px(dn(270), dn(275), dn(280), dn(280)), on), "QA_PIXEL": (px(0, 0, 0, 0), on)},
        "B4": {"ST_B10": (px(dn(290), dn(284), 0, dn(282)), on), "QA_PIXEL": (px(0, 0, cloud, 0), on)},
        "A12": {"ST_B10": (px(dn(310), dn(300), dn(300), 0), on), "QA_PIXEL": (px(0, 0, 0, cloud), on)},
    }
    img = q.landsat_download_image(spec, "T", [("B20", -20.0), ("B4", -4.0)], [("A12", 12.0)])
    out = run(img, world)
    lst, _ = out[q.LST]
    observed, _ = out[q.OBSERVED]
    assert lst[0] == pytest.approx(300.0, abs=1e-4)
    assert lst[1] == pytest.approx(284 + 16 * 4 / 16, abs=1e-4)  # 288 K
    assert lst[2] == pytest.approx(280 + 20 * 20 / 32, abs=1e-4)  # 292.5 K
    assert lst[3] == q.NODATA  # no clear scene after it within the window: stays a gap
    assert observed.tolist() == [1.0, 0.0, 0.0, 0.0]
    # interpolation off: no neighbours, gaps stay gaps
    plain = run(q.landsat_download_image(spec, "T", [], []), world)[q.LST][0]
    assert plain[1:].tolist() == [q.NODATA] * 3


def day(iso: str, pct: float, *images) -> Day:
    return Day(dt.date.fromisoformat(iso), pct, tuple(images))


def ms(iso: str, hour: float = 10.5) -> int:
    return int((dt.datetime.fromisoformat(iso) - dt.datetime(1970, 1, 1)).total_seconds() * 1000 + hour * 3.6e6)


def test_plan_pairs_same_day_thresholds_and_neighbours(source):
    a = lambda name: f"{L8}/{name}"  # noqa: E731
    landsat_days = [
        day("2016-01-04", 95.0, (a("LC08_199027_20160104"), ms("2016-01-04"))),
        day("2016-01-20", 79.9, (a("LC08_199027_20160120"), ms("2016-01-20"))),  # below 80 %: not even a neighbour
        day("2016-02-05", 80.0, (a("LC08_199027_20160205"), ms("2016-02-05")),
            (a("LC08_198027_20160205"), ms("2016-02-05", 10.51))),
        day("2016-03-08", 88.0, (a("LC08_199027_20160308"), ms("2016-03-08"))),
        day("2016-05-11", 99.0, (a("LC08_199027_20160511"), ms("2016-05-11"))),
    ]
    modis = {"MODIS/061/MOD11A1": [day("2016-02-05", 90.0, ("MODIS/061/MOD11A1/2016_02_05", ms("2016-02-05", 0))),
                                   day("2016-03-08", 89.9, ("MODIS/061/MOD11A1/2016_03_08", ms("2016-03-08", 0))),
                                   day("2016-05-11", 97.0, ("MODIS/061/MOD11A1/2016_05_11", ms("2016-05-11", 0)))],
             "MODIS/061/MYD11A1": [day("2016-03-08", 93.0, ("MODIS/061/MYD11A1/2016_03_08", ms("2016-03-08", 0)))]}
    terra_only = source.modis
    landsat_jobs, modis_jobs = plan_downloads(landsat_days, modis, source.landsat, terra_only, 32)
    assert [j.path for j in modis_jobs] == ["MODIS/2016_02_05.tif", "MODIS/2016_05_11.tif"]
    assert [j.path for j in landsat_jobs] == ["Landsat/LC08_199027_20160205.tif", "Landsat/LC08_198027_20160205.tif",
                                              "Landsat/LC08_199027_20160511.tif"]
    first = landsat_jobs[0]
    assert [(n.rsplit("/", 1)[1], round(d, 3)) for n, d in first.before] == [("LC08_199027_20160104", -32.0)]
    assert [(n.rsplit("/", 1)[1], round(d, 3)) for n, d in first.after] == [("LC08_199027_20160308", 32.0),
                                                                           ("LC08_198027_20160205", 0.0)]
    assert landsat_jobs[2].before == () and landsat_jobs[2].after == ()  # 2016-05-11: nothing within 32 days
    # Aqua serves the day Terra misses; interpolation off leaves no neighbours
    both = replace(terra_only, collections=("MODIS/061/MOD11A1", "MODIS/061/MYD11A1"))
    landsat_jobs, modis_jobs = plan_downloads(landsat_days, modis, source.landsat, both, 0)
    assert [j.asset for j in modis_jobs] == ["MODIS/061/MOD11A1/2016_02_05", "MODIS/061/MYD11A1/2016_03_08",
                                             "MODIS/061/MOD11A1/2016_05_11"]
    assert all(j.before == () and j.after == () for j in landsat_jobs)


@pytest.mark.parametrize("override, message", [
    ("dataset.source.region={bbox: [2.1, 47.7, 1.7, 48.0]}", "west < east"),
    ("dataset.source.landsat.min_valid_percent=180", "percentage between 0 and 100"),
    ("dataset.source.modis.qc_rules=[{bits: [6, 7], max: 4}]", "does not fit in bits"),
    ("+dataset.source.modis.mask_snow=true", "unknown key(s) mask_snow"),
    ("dataset.source.start=2013-02-30", "is not a date"),
    ("dataset.source.fine_grid.crs=UTM31", "use an EPSG code"),
    ("dataset.source.download.max_request_bytes=100000000", "exceed Earth Engine's limits"),
])
def test_bad_config_is_named(override, message):
    with pytest.raises(ConfigError) as err:
        make_source("stf_lst_gee", override)
    assert message in str(err.value)


def test_geojson_region(tmp_path):
    w, s, e, n = BBOX
    feature = {"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}}
    path = tmp_path / "orleans.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    src = make_source("gee", f"dataset.source.region={{geojson: {path}}}",
                      "dataset.source.start=2016-01-01", "dataset.source.end=2017-01-01")
    assert src.fine_grid.shape == (950, 950) and src.region == feature["geometry"]
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [[[406365, 5290035], [434865, 5290035],
                                                                    [434865, 5318535], [406365, 5290035]]]}))
    with pytest.raises(ConfigError, match="not longitude/latitude"):
        make_source("gee", f"dataset.source.region={{geojson: {path}}}",
                    "dataset.source.start=2016-01-01", "dataset.source.end=2017-01-01")
