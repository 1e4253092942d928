"""How stf_bench talks to Earth Engine: authentication, the transport, retries, request tiles and atomic files.

The transport is a small object with `connect()`, `compute_value(expression)` and `compute_pixels(request)`, so tests
can serve synthetic GeoTIFFs while the query graphs stay real `ee` objects. Every call goes through `with_retry`
(exponential backoff on 429, 5xx and timeouts); every image is fetched in tiles that respect Earth Engine's request
limits, assembled in memory and written with a temporary name then renamed, so a file that exists is complete.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ee
import google.auth.exceptions
import numpy as np
from googleapiclient.errors import HttpError
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile

from stf_bench.data.geotiff import write_geotiff
from stf_bench.data.scene import Grid
from stf_bench.errors import StfBenchError

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
# Earth Engine reports some overload conditions only in the message text.
TRANSIENT_MESSAGES = ("too many requests", "too many concurrent", "computation timed out", "capacity exceeded",
                      "internal error", "service unavailable", "deadline exceeded")
BYTES_PER_VALUE = 4  # float32


class GeeAuthError(StfBenchError):
    """No usable Earth Engine credentials or project; the message says exactly how to set them up."""


class GeeDownloadError(StfBenchError):
    """An Earth Engine request failed for good (not transient, or still failing after all retries)."""


@dataclass(frozen=True)
class DownloadSpec:
    """Request limits and retry policy. Earth Engine refuses responses over 48 MB or 32768 pixels per side."""

    max_request_bytes: int
    max_request_side: int
    retries: int
    backoff_s: float
    max_backoff_s: float
    timeout_s: float


def auth_help(project: str | None) -> str:
    """The one-paragraph fix for missing or unusable credentials (no secrets, only where to put them)."""
    project_hint = project or "YOUR_CLOUD_PROJECT"
    return (
        "To download from Google Earth Engine you need an Earth Engine account and a Cloud project registered for "
        "Earth Engine (https://code.earthengine.google.com/register). Then either (1) run `earthengine authenticate` "
        "once on this machine (it stores a token in ~/.config/earthengine/credentials) and pass your project: "
        f"`python prepare.py dataset=stf_lst_gee dataset.source.project={project_hint}`; or (2) use a service account "
        "registered for Earth Engine: `dataset.source.service_account_key=/path/to/key.json` (its project is used "
        "unless dataset.source.project is set). Without an account, use dataset=stf_lst with files you already have, "
        "or dataset=synthetic."
    )


def credential_files() -> list[Path]:
    """Where earthengine-api and Google auth look for stored credentials, existing or not."""
    paths = [Path(ee.oauth.get_credentials_path())]
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        paths.append(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]))
    gcloud = Path(os.environ.get("CLOUDSDK_CONFIG", Path.home() / ".config" / "gcloud"))
    paths.append(gcloud / "application_default_credentials.json")
    return paths


def initialize_earth_engine(project: str | None, service_account_key: str | None) -> None:
    """`ee.Initialize` with the user's credentials, or GeeAuthError at once when there are none.

    Looking for credential files first avoids earthengine-api's probe of a cloud metadata server, which takes
    3-12 s to time out on a machine without credentials (set NO_GCE_CHECK=false to allow that probe on a cloud VM).
    """
    if service_account_key:
        key = Path(service_account_key).expanduser()
        if not key.is_file():
            raise GeeAuthError(f"dataset.source.service_account_key={key} does not exist. " + auth_help(project))
        try:
            credentials = ee.ServiceAccountCredentials(None, key_file=str(key))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise GeeAuthError(
                f"{key} is not a service-account key file ({type(exc).__name__}). Download a JSON key for the "
                f"service account from the Cloud console (IAM > Service accounts > Keys). " + auth_help(project)
            ) from None
    else:
        searched = credential_files()
        metadata_allowed = os.environ.get("NO_GCE_CHECK", "").lower() == "false"
        if not any(p.is_file() for p in searched) and not metadata_allowed:
            raise GeeAuthError(
                "No Earth Engine credentials found (looked in " + ", ".join(map(str, searched)) + "). "
                + auth_help(project)
            )
        credentials = "persistent"
    try:
        ee.Initialize(credentials=credentials, project=project)
    except ee.EEException as exc:
        raise GeeAuthError(f"Earth Engine refused to start: {_first_line(exc)} " + auth_help(project)) from None
    except google.auth.exceptions.GoogleAuthError as exc:  # expired or revoked token, unreadable key
        raise GeeAuthError(
            f"Earth Engine credentials are not usable ({type(exc).__name__}). " + auth_help(project)
        ) from None


class EarthEngineTransport:
    """The real transport: earthengine-api calls, authenticated on `connect()`."""

    def __init__(self, project: str | None, service_account_key: str | None, timeout_s: float) -> None:
        self.project, self.service_account_key, self.timeout_s = project, service_account_key, timeout_s

    def connect(self) -> None:
        initialize_earth_engine(self.project, self.service_account_key)
        ee.data.setDeadline(int(self.timeout_s * 1000))

    def compute_value(self, expression):
        return ee.data.computeValue(expression)

    def compute_pixels(self, request: dict) -> bytes:
        return ee.data.computePixels(request)


def transient_reason(exc: BaseException) -> str | None:
    """Why `exc` is worth retrying ('HTTP 429', 'timeout', ...), or None when retrying cannot help."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection error"
    for err in (exc, exc.__cause__, exc.__context__):
        status = getattr(getattr(err, "resp", None), "status", None)
        if status is not None and int(status) in TRANSIENT_STATUS:
            return f"HTTP {int(status)}"
    text = str(exc).lower()
    return next((m for m in TRANSIENT_MESSAGES if m in text), None)


def with_retry(call: Callable[[], object], what: str, spec: DownloadSpec, sleep: Callable[[float], None]):
    """Run `call`, retrying transient failures after backoff_s, 2*backoff_s, ... (capped at max_backoff_s)."""
    for attempt in range(spec.retries + 1):
        try:
            return call()
        except Exception as exc:
            reason = transient_reason(exc)
            if reason is None and not isinstance(exc, (ee.EEException, HttpError)):
                raise
            if reason is None:
                raise GeeDownloadError(
                    f"{what}: Earth Engine request failed: {_first_line(exc)}. This is not a transient error; "
                    f"check the dataset.source settings named in the message (region, dates, collections, bands)."
                ) from exc
            if attempt == spec.retries:
                raise GeeDownloadError(
                    f"{what}: still failing after {spec.retries + 1} attempts ({reason}: {_first_line(exc)}). "
                    f"Re-run the same command later: finished files are kept and the download resumes; raise "
                    f"dataset.source.download.retries to wait longer."
                ) from exc
            delay = min(spec.max_backoff_s, spec.backoff_s * 2**attempt)
            log.warning("%s: %s, retry %d/%d in %.0f s", what, reason, attempt + 1, spec.retries, delay)
            sleep(delay)


def request_tiles(height: int, width: int, bands: int, spec: DownloadSpec) -> list[tuple[int, int, int, int]]:
    """(row, col, height, width) windows covering the grid, each within the byte and side limits."""
    side = min(spec.max_request_side, int((spec.max_request_bytes / (bands * BYTES_PER_VALUE)) ** 0.5))
    if side < 1:
        raise GeeDownloadError(
            f"dataset.source.download.max_request_bytes={spec.max_request_bytes} is too small for one pixel of "
            f"{bands} float32 band(s); use at least {bands * BYTES_PER_VALUE}."
        )
    return [(r, c, min(side, height - r), min(side, width - c))
            for r in range(0, height, side) for c in range(0, width, side)]


def pixel_request(image, ee_crs: str, grid: Grid, window: tuple[int, int, int, int], bands: list[str]) -> dict:
    """The `ee.data.computePixels` request for one window of `grid` (GeoTIFF, float32)."""
    row, col, h, w = window
    a, b, c, d, e, f = grid.window(row, col, h, w).transform
    return {
        "expression": image,
        "fileFormat": "GEO_TIFF",
        "bandIds": list(bands),
        "grid": {
            "dimensions": {"width": w, "height": h},
            "affineTransform": {"scaleX": a, "shearX": b, "translateX": c, "shearY": d, "scaleY": e,
                                "translateY": f},
            "crsCode": ee_crs,
        },
    }


def decode_tile(payload, shape: tuple[int, int, int], nodata: float, what: str) -> np.ndarray:
    """A (bands, h, w) float32 array from a GeoTIFF response (bytes) or an array, NODATA turned into NaN."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            with MemoryFile(bytes(payload)) as mem, mem.open() as ds:
                data = ds.read()
        except RasterioError as exc:
            raise GeeDownloadError(f"{what}: Earth Engine returned data that is not a GeoTIFF ({exc}).") from exc
    else:
        data = np.asarray(payload)
        if data.ndim == 2:
            data = data[None]
    if data.shape != shape:
        raise GeeDownloadError(f"{what}: Earth Engine returned an array of shape {data.shape}, expected {shape}.")
    data = data.astype(np.float32)
    data[~np.isfinite(data) | (data == np.float32(nodata))] = np.nan
    return data


def download_image(transport, image, ee_crs: str, grid: Grid, bands: list[str], path: Path, spec: DownloadSpec,
                   sleep: Callable[[float], None], nodata: float, **tags) -> None:
    """Fetch `image` on `grid` tile by tile and write it to `path` atomically (temporary file, then rename)."""
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    tiles = request_tiles(grid.height, grid.width, len(bands), spec)
    for k, window in enumerate(tiles):
        row, col, h, w = window
        what = f"{path.name} tile {k + 1}/{len(tiles)}"
        payload = with_retry(lambda: transport.compute_pixels(pixel_request(image, ee_crs, grid, window, bands)),
                             what, spec, sleep)
        out[:, row:row + h, col:col + w] = decode_tile(payload, (len(bands), h, w), nodata, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_geotiff(path, out, grid, bands=",".join(bands), units="K", **tags)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
