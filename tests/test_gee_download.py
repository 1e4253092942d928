"""Downloading from Earth Engine, offline: request tiles, retries, resume, atomic files, credentials.

A fake transport stands in for the network only: it answers the catalog queries and serves synthetic GeoTIFF tiles
computed from the request's pixel grid, while the query graphs it receives are the real earthengine-api objects.
The end-to-end tests go through GeeSource.load into the folder reader, as `prepare.py dataset=gee` does.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ee
import httplib2
import numpy as np
import pytest
import rasterio
from affine import Affine
from googleapiclient.errors import HttpError
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from rasterio.io import MemoryFile

from stf_bench.data.scene import Grid
from stf_bench.data.sources import gee_query as q
from stf_bench.data.sources.gee_download import (DownloadSpec, GeeAuthError, GeeDownloadError, initialize_earth_engine,
                                                 pixel_request, request_tiles, transient_reason, with_retry)
from stf_bench.errors import StfBenchError

ROOT = Path(__file__).resolve().parents[1]
SMALL_BOX = [1.90, 47.90, 1.92, 47.915]  # about 1.5 x 1.7 km inside Orléans: a 58 x 52 px fine grid
SPEC = DownloadSpec(max_request_bytes=2 * 4 * 24 * 24, max_request_side=32768, retries=3, backoff_s=0.5,
                    max_backoff_s=4.0, timeout_s=60.0)


def http_error(status: int) -> HttpError:
    return HttpError(httplib2.Response({"status": status}), b'{"error": {"message": "synthetic"}}')


def ee_error_from_http(status: int) -> ee.EEException:
    """An EEException as ee.data raises it: translated inside the `except HttpError` block."""
    try:
        raise http_error(status)
    except HttpError:
        try:
            raise ee.EEException(f"synthetic HTTP {status}")
        except ee.EEException as exc:
            return exc


# -- tiles, requests, retries ----------------------------------------------------------------------------------------
def test_request_tiles_respect_limits_and_cover_once():
    big = DownloadSpec(32 * 2**20, 32768, 0, 1.0, 1.0, 60.0)
    assert request_tiles(950, 950, 2, big) == [(0, 0, 950, 950)]  # STF-LST: 7.2 MB, one request
    tiles = request_tiles(57, 50, 2, SPEC)
    assert len(tiles) == 9 and tiles[-1] == (48, 48, 9, 2)
    cover = np.zeros((57, 50), int)
    for r, c, h, w in tiles:
        assert h * w * 2 * 4 <= SPEC.max_request_bytes
        cover[r:r + h, c:c + w] += 1
    assert (cover == 1).all()
    side_limited = DownloadSpec(48 * 2**20, 1000, 0, 1.0, 1.0, 60.0)
    assert len(request_tiles(2500, 1200, 1, side_limited)) == 3 * 2


def test_pixel_request_places_the_window():
    grid = Grid.from_rasterio("EPSG:32631", Affine(30, 0, 406365, 0, -30, 5318535), 950, 950)
    req = pixel_request("IMAGE", "EPSG:32631", grid, (100, 200, 24, 16), ["LST", "observed"])
    assert req["grid"] == {"dimensions": {"width": 16, "height": 24},
                           "affineTransform": {"scaleX": 30.0, "shearX": 0.0, "translateX": 406365.0 + 200 * 30,
                                               "shearY": 0.0, "scaleY": -30.0, "translateY": 5318535.0 - 100 * 30},
                           "crsCode": "EPSG:32631"}
    assert req["fileFormat"] == "GEO_TIFF" and req["bandIds"] == ["LST", "observed"] and req["expression"] == "IMAGE"


@pytest.mark.parametrize("exc, reason", [
    (http_error(429), "HTTP 429"), (http_error(503), "HTTP 503"), (ee_error_from_http(500), "HTTP 500"),
    (TimeoutError("read timed out"), "timeout"), (ConnectionResetError(), "connection error"),
    (ee.EEException("Computation timed out."), "computation timed out"),
    (http_error(400), None), (ee_error_from_http(403), None), (ee.EEException("Image.select: no band 'ST_B11'"), None),
])
def test_transient_errors_are_recognised(exc, reason):
    assert transient_reason(exc) == reason


def test_retry_backs_off_exponentially_then_gives_up():
    sleeps = []
    outcomes = iter([http_error(429), ee_error_from_http(502), TimeoutError(), "done"])

    def call():
        out = next(outcomes)
        if isinstance(out, BaseException):
            raise out
        return out

    assert with_retry(call, "tile", SPEC, sleeps.append) == "done"
    assert sleeps == [0.5, 1.0, 2.0]
    sleeps.clear()
    with pytest.raises(GeeDownloadError, match="still failing after 4 attempts .HTTP 503.*resumes"):
        with_retry(lambda: (_ for _ in ()).throw(http_error(503)), "tile", SPEC, sleeps.append)
    assert sleeps == [0.5, 1.0, 2.0]  # capped at max_backoff_s=4 only from the 4th retry on
    sleeps.clear()
    with pytest.raises(GeeDownloadError, match="not a transient error"):
        with_retry(lambda: (_ for _ in ()).throw(http_error(400)), "tile", SPEC, sleeps.append)
    assert sleeps == []
    with pytest.raises(ZeroDivisionError):  # a bug is not an Earth Engine error: it keeps its traceback
        with_retry(lambda: 1 / 0, "tile", SPEC, sleeps.append)


# -- the fake Earth Engine ------------------------------------------------------------------------------------------
def resolved(obj):
    """The serialized ee graph with value references replaced by their values (plain dicts and lists)."""
    enc = ee.serializer.encode(obj, for_cloud_api=True)

    def node(v):
        if isinstance(v, dict):
            if "valueReference" in v:
                return node(enc["values"][v["valueReference"]])
            if set(v) == {"functionDefinitionValue"}:
                return {"body": node(enc["values"][v["functionDefinitionValue"]["body"]])}
            return {k: node(x) for k, x in v.items()}
        if isinstance(v, list):
            return [node(x) for x in v]
        return v

    return node(enc["values"][enc["result"]])


def invocations(tree, name):
    """Argument dicts of every call of `name` in a resolved graph."""
    if isinstance(tree, dict):
        inv = tree.get("functionInvocationValue")
        if inv and inv["functionName"] == name:
            yield inv.get("arguments", {})
        for v in tree.values():
            yield from invocations(v, name)
    elif isinstance(tree, list):
        for v in tree:
            yield from invocations(v, name)


def const(node):
    """A constant argument of a resolved graph (plain, or an array of constants)."""
    if "arrayValue" in node:
        return [const(v) for v in node["arrayValue"]["values"]]
    return node["constantValue"]


def loaded_ids(tree) -> set[str]:
    return {const(a["id"]) for a in invocations(tree, "Image.load")}


L8 = "LANDSAT/LC08/C02/T1_L2"
TERRA = "MODIS/061/MOD11A1"


def ms(iso: str, hour: float) -> int:
    return int((dt.datetime.fromisoformat(iso) - dt.datetime(1970, 1, 1)).total_seconds() * 1000 + hour * 3.6e6)


# day -> (Landsat valid %, Landsat scenes, MODIS valid %)
WORLD = {
    "2016-02-05": (93.0, ["LC08_198027_20160205", "LC08_199027_20160205"], 95.0),
    "2016-02-21": (85.0, ["LC08_199027_20160221"], 50.0),  # usable Landsat, cloudy MODIS: a neighbour only
    "2016-03-08": (90.0, ["LC08_199027_20160308"], 92.0),
    "2016-03-24": (40.0, ["LC08_199027_20160324"], 99.0),  # too cloudy for Landsat
}


def field(x, y, day: str, sensor: str):
    """The synthetic LST (K) at map coordinates on a day: a gradient plus a per-day and per-sensor offset."""
    doy = dt.date.fromisoformat(day).timetuple().tm_yday
    base = 285.0 + doy / 10 + (0.3 if sensor == "modis" else 0.0)
    return base + 0.001 * (x % 10000) + 0.0005 * (y % 10000)


def cloud(rows, cols, grid_shape):
    """The target's own gaps: a block the server filled in time (observed 0) and a block it could not fill."""
    h, w = grid_shape
    filled = (rows >= 10) & (rows < 20) & (cols >= w // 2 + 5) & (cols < w // 2 + 15)
    hole = (rows >= 40) & (rows < 45) & (cols >= w - 6)
    return filled, hole


class FakeEarthEngine:
    """Serves catalog answers and GeoTIFF tiles; fails on chosen calls (an exception, or KeyboardInterrupt)."""

    def __init__(self, fine_grid: Grid, failures: dict | None = None, value_failures: dict | None = None):
        self.fine_grid = fine_grid
        self.failures = failures or {}
        self.value_failures = value_failures or {}
        self.pixel_calls = 0
        self.value_calls = 0
        self.requested: dict[str, int] = {}  # scene -> number of images in its request (1 = no interpolation)
        self.connected = 0

    def connect(self):
        self.connected += 1

    def compute_value(self, expression):
        self.value_calls += 1
        if self.value_calls in self.value_failures:
            raise self.value_failures.pop(self.value_calls)
        tree = resolved(expression)
        ids = {const(a["id"]) for a in invocations(tree, "ImageCollection.load")}
        if ids == {L8}:
            start, end = next((const(a["start"]), const(a["end"])) for a in invocations(tree, "DateRange")
                              if "constantValue" in a["start"])
            return [[d, pct, [[f"{L8}/{s}", ms(d, 10.5 + k / 1000)] for k, s in enumerate(scenes)]]
                    for d, (pct, scenes, _) in WORLD.items() if start <= d < end]
        assert ids == {TERRA}, ids
        days = const(next(invocations(tree, "List.map"))["list"])
        return [[d, WORLD[d][2], [[f"{TERRA}/{d.replace('-', '_')}", ms(d, 0)]]] for d in days]

    def compute_pixels(self, request):
        self.pixel_calls += 1
        if self.pixel_calls in self.failures:
            raise self.failures.pop(self.pixel_calls)
        g, bands = request["grid"], request["bandIds"]
        w, h = g["dimensions"]["width"], g["dimensions"]["height"]
        t = g["affineTransform"]
        transform = Affine(t["scaleX"], t["shearX"], t["translateX"], t["shearY"], t["scaleY"], t["translateY"])
        rows, cols = np.mgrid[0:h, 0:w]
        x, y = pixel_centres(transform, rows, cols)
        tree = resolved(request["expression"])
        if bands == [q.LST, q.OBSERVED]:
            observed_band = next(a for a in invocations(tree, "Image.rename") if const(a["names"]) == [q.OBSERVED])
            target, = loaded_ids(observed_band)  # the observed band is the target scene's own mask
            scene = target.rsplit("/", 1)[1]
            day = dt.datetime.strptime(scene[-8:], "%Y%m%d").date().isoformat()
            self.requested[scene] = len(loaded_ids(tree))
            # full-grid pixel indices of this tile, to place the gaps on the fine grid
            r0 = round((self.fine_grid.transform[5] - t["translateY"]) / 30)
            c0 = round((t["translateX"] - self.fine_grid.transform[2]) / 30)
            filled, hole = cloud(rows + r0, cols + c0, self.fine_grid.shape)
            lst = field(x, y, day, "landsat") + np.where(filled, 0.25, 0.0)
            seen = np.where(filled, 0.0, 1.0)
            outside = hole.copy()
            if "_198027_" in scene:  # the neighbouring path/row covers only the western half of the region
                outside |= (cols + c0) >= self.fine_grid.width // 2
                lst = lst + 1.0
            lst[outside], seen[outside] = q.NODATA, q.NODATA
            data = np.stack([lst, seen])
        else:
            target, = loaded_ids(tree)
            day = target.rsplit("/", 1)[1].replace("_", "-")
            self.requested[target.rsplit("/", 1)[1]] = 1
            lst = field(x, y, day, "modis")
            lst[0, 0] = q.NODATA
            data = lst[None]
        return geotiff_bytes(data.astype(np.float32), transform, g["crsCode"])


def geotiff_bytes(data: np.ndarray, transform: Affine, crs_code: str) -> bytes:
    # Earth Engine declares its MODIS sinusoidal on the WGS 84 ellipsoid; the downloader must not trust it
    crs = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m" if crs_code == "SR-ORG:6974" else crs_code
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                      dtype="float32", crs=crs, transform=transform) as ds:
            ds.write(data)
        return mem.read()


def small_source_cfg():
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("prepare", overrides=[
            "dataset=gee", f"dataset.source.region={{bbox: {SMALL_BOX}}}", "dataset.source.start=2016-01-01",
            "dataset.source.end=2016-04-01", "dataset.source.coarse_grid.scale=1000.0",
            f"dataset.source.download.max_request_bytes={SPEC.max_request_bytes}",
            f"dataset.source.download.retries={SPEC.retries}", f"dataset.source.download.backoff_s={SPEC.backoff_s}",
        ])
    return cfg.dataset.source


def make(fake_factory, sleeps):
    cfg = small_source_cfg()
    probe = instantiate(cfg, transport=object())
    fake = fake_factory(probe.fine_grid)
    return instantiate(cfg, transport=fake, sleep=sleeps.append), fake


def pixel_centres(t: Affine, rows, cols):
    """Map coordinates of pixel centres on a north-up grid."""
    return t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e


def expected_fine(grid: Grid, day: str) -> np.ndarray:
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    return field(*pixel_centres(grid.affine, rows, cols), day, "landsat")


# -- end to end ------------------------------------------------------------------------------------------------------
def test_download_end_to_end_into_scenes(ee_offline, tmp_path):
    sleeps = []
    failures = {2: http_error(429), 7: ee_error_from_http(500)}
    source, fake = make(lambda g: FakeEarthEngine(g, failures, value_failures={1: TimeoutError()}), sleeps)
    grid = source.fine_grid
    assert grid.shape == (58, 52)
    scenes = source.load(tmp_path)

    assert sleeps == [0.5, 0.5, 0.5]  # the catalog timeout, the 429 and the 500, each retried once
    assert fake.connected == 1
    assert fake.value_calls == 3  # Landsat 2016 (twice: timeout), MODIS on the 3 usable Landsat days
    # 3 Landsat files x 9 tiles (+2 retried) and 2 MODIS files x 1 tile; the interpolation uses the 02-21 neighbour
    assert fake.pixel_calls == 3 * 9 + 2 + 2
    raw = tmp_path / "raw"
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.tif")) == [
        "Landsat/LC08_198027_20160205.tif", "Landsat/LC08_199027_20160205.tif", "Landsat/LC08_199027_20160308.tif",
        "MODIS/2016_02_05.tif", "MODIS/2016_03_08.tif"]
    assert not list(raw.rglob("*.part"))

    assert [s.date for s in scenes] == [dt.date(2016, 2, 5), dt.date(2016, 3, 8)]
    first, second = scenes
    assert first.fine_grid.transform == grid.transform and first.fine_grid.rio_crs.to_epsg() == 32631
    rows, cols = np.mgrid[0:58, 0:52]
    filled, hole = cloud(rows, cols, (58, 52))
    west = cols < 26

    # 2016-03-08: one path/row; every tile in place (the field depends on the map coordinates)
    want = expected_fine(grid, "2016-03-08") + np.where(filled, 0.25, 0.0)
    want[hole] = np.nan
    np.testing.assert_allclose(second.fine, want.astype(np.float32), rtol=0, atol=1e-4)
    assert np.array_equal(second.fine_filled, filled) and np.array_equal(second.fine_valid, ~filled & ~hole)

    # 2016-02-05: two path/rows mosaicked, the first file (198027, west half, +1 K) wins where it has data
    want = expected_fine(grid, "2016-02-05") + np.where(filled, 0.25, 0.0) + np.where(west, 1.0, 0.0)
    want[hole] = np.nan
    np.testing.assert_allclose(first.fine, want.astype(np.float32), rtol=0, atol=1e-4)
    assert np.array_equal(first.fine_filled, filled & ~west) and first.fine_valid.sum() == 58 * 52 - 100 - 30

    # MODIS: on the sphere sinusoidal grid that was requested, NODATA turned into NaN
    coarse = first.coarse_grid
    assert coarse.transform == source.coarse_grid.transform and "+R=6371007.181" in coarse.rio_crs.to_proj4()
    rows, cols = np.mgrid[0:coarse.height, 0:coarse.width]
    want = field(*pixel_centres(coarse.affine, rows, cols), "2016-02-05", "modis").astype(np.float32)
    want[0, 0] = np.nan
    np.testing.assert_allclose(first.coarse, want, rtol=0, atol=1e-4)
    # interpolation needs clear scenes on both sides within 32 days (02-21 at 85 % counts, 03-24 at 40 % does not)
    assert fake.requested == {"LC08_198027_20160205": 1, "LC08_199027_20160205": 4, "LC08_199027_20160308": 1,
                              "2016_02_05": 1, "2016_03_08": 1}
    with rasterio.open(raw / "Landsat/LC08_199027_20160308.tif") as ds:
        assert ds.count == 2 and ds.tags()["source"] == f"{L8}/LC08_199027_20160308"
        assert ds.tags()["temporal_fill_neighbours"] == "3 before, 0 after"


def test_interrupted_download_resumes_and_skips_complete_files(ee_offline, tmp_path):
    sleeps = []
    # the run dies on the 5th tile of the second Landsat file (call 9 + 5 = 14), as a Ctrl-C would
    source, fake = make(lambda g: FakeEarthEngine(g, {14: KeyboardInterrupt()}), sleeps)
    with pytest.raises(KeyboardInterrupt):
        source.load(tmp_path)
    landsat = tmp_path / "raw" / "Landsat"
    assert [p.name for p in landsat.iterdir()] == ["LC08_198027_20160205.tif"]  # the second file was never renamed
    done = landsat / "LC08_198027_20160205.tif"
    stamp = done.stat().st_mtime_ns
    leftover = landsat / "LC08_199027_20160308.tif.part"
    leftover.write_bytes(b"half a GeoTIFF")  # a temporary file left by a killed writer

    source, fake = make(lambda g: FakeEarthEngine(g), sleeps)
    scenes = source.load(tmp_path)
    assert fake.value_calls == 0 and fake.connected == 1  # the catalog was cached; files were missing
    assert "LC08_198027_20160205" not in fake.requested and fake.pixel_calls == 2 * 9 + 2
    assert done.stat().st_mtime_ns == stamp and not leftover.exists()
    assert len(scenes) == 2 and np.isfinite(scenes[1].fine).sum() == 58 * 52 - 30

    # complete and cached: rebuilt with no network and no credentials
    class Offline(FakeEarthEngine):
        def connect(self):
            raise AssertionError("connected although everything was on disk")

    source, fake = make(lambda g: Offline(g), sleeps)
    again = source.load(tmp_path)
    assert fake.pixel_calls == 0 and [s.date for s in again] == [s.date for s in scenes]


def test_changed_query_replaces_old_files(ee_offline, tmp_path):
    source, _ = make(lambda g: FakeEarthEngine(g), [])
    source.load(tmp_path)
    cfg = small_source_cfg()
    cfg.end = "2016-03-01"  # 03-08 leaves the date range
    fake = FakeEarthEngine(source.fine_grid)
    scenes = instantiate(cfg, transport=fake, sleep=[].append).load(tmp_path)
    assert [s.date for s in scenes] == [dt.date(2016, 2, 5)]
    assert not (tmp_path / "raw" / "MODIS" / "2016_03_08.tif").exists() and fake.value_calls == 2


# -- credentials -----------------------------------------------------------------------------------------------------
def test_no_credentials_fails_fast_with_the_steps(tmp_path):
    """A clean HOME (no stored credentials): the command stops in well under 2 s with the exact steps."""
    script = textwrap.dedent(f"""
        import sys, time
        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate
        with initialize_config_dir({str(ROOT / "conf")!r}, version_base="1.3"):
            cfg = compose("prepare", overrides=["dataset=stf_lst_gee", "dataset.source.project=my-project"])
        source = instantiate(cfg.dataset.source)
        t0 = time.perf_counter()
        try:
            source.load({str(tmp_path)!r})
        except Exception as exc:
            print(f"{{time.perf_counter() - t0:.3f}}|{{type(exc).__name__}}|{{exc}}")
            sys.exit(2)
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "NO_GCE_CHECK")}
    env["HOME"] = str(tmp_path / "home")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    total = time.perf_counter() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    elapsed, kind, message = proc.stdout.strip().split("|", 2)
    assert kind == "GeeAuthError" and float(elapsed) < 2.0, (elapsed, total)
    assert str(tmp_path / "home" / ".config" / "earthengine" / "credentials") in message
    for step in ("earthengine authenticate", "dataset.source.project=my-project",
                 "dataset.source.service_account_key=/path/to/key.json"):
        assert step in message
    assert "\n" not in message and "Traceback" not in proc.stdout + proc.stderr


def test_service_account_key_problems_are_named(tmp_path):
    missing = tmp_path / "nokey.json"
    with pytest.raises(GeeAuthError, match=f"service_account_key={missing} does not exist"):
        initialize_earth_engine("p", str(missing))
    bad = tmp_path / "key.json"
    bad.write_text('{"type": "service_account", "private_key": "SECRET-NOT-A-KEY"}')
    with pytest.raises(GeeAuthError) as err:
        initialize_earth_engine("p", str(bad))
    assert "is not a service-account key file" in str(err.value) and "SECRET" not in str(err.value)
    assert isinstance(err.value, StfBenchError)
