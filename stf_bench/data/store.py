"""The dataset store: ``data/<dataset>/<variant>-<hash>/`` with GeoTIFF pairs, masks, one stack and a manifest.

Built in a temporary folder and renamed when complete, so a crash never leaves a half-written dataset (and a killed
build's folder is removed by the next build). The folder name carries a hash of everything that determines its
content, so the same config is a cache hit and a changed one builds anew beside it. A cache hit is verified first
(sizes always, checksums once per store: store_safety.py); a damaged store is rebuilt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

import stf_bench
from stf_bench.data.geotiff import write_geotiff
from stf_bench.data.preprocess import Prepared
from stf_bench.data.refill import cross_date_fill
from stf_bench.data.report import QUICKLOOK, quicklook
from stf_bench.data.scene import Grid
from stf_bench.data.store_safety import (check_free_space, disk_error, partial_dir, remove_stale_temp, store_problem,
                                         write_stamp)
from stf_bench.errors import DataError, StfBenchError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: manifest records the cross-date fill (data/refill.py)
MANIFEST = "manifest.json"
VALUES, OBSERVED, FILLED = "values.npy", "observed.npy", "filled.npy"


@dataclass(frozen=True)
class DatasetStore:
    """Read access to a built dataset: dates, grid, the (T,2,H,W) stacks as memory maps, the manifest."""

    path: Path

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    @property
    def dates(self) -> list[dt.date]:
        return [dt.date.fromisoformat(d["date"]) for d in self.manifest["dates"]]

    @property
    def grid(self) -> Grid:
        return Grid.from_json(self.manifest["grid"])

    @property
    def name(self) -> str:
        return self.manifest["dataset"]["name"]

    @property
    def variant(self) -> str:
        return self.manifest["variant"]

    @property
    def coarse_block(self) -> tuple[float, float] | None:
        """(rows, cols) fine pixels per coarse pixel as preprocessing placed MODIS; None for stores that predate it."""
        block = self.manifest.get("coarse_block")
        return None if block is None else (float(block["rows"]), float(block["cols"]))

    @cached_property
    def values(self) -> np.ndarray:
        return np.load(self.path / VALUES, mmap_mode="r")

    @cached_property
    def observed(self) -> np.ndarray:
        return np.load(self.path / OBSERVED, mmap_mode="r")

    @cached_property
    def filled(self) -> np.ndarray:
        return np.load(self.path / FILLED, mmap_mode="r")


def dataset_key(preprocess_cfg: DictConfig, fingerprint: dict) -> str:
    """Hash of what determines the store's content: the source's fingerprint (its data and settings, never
    credentials) and the preprocessing; scoring settings such as the data range are excluded."""
    payload = {
        "format": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "preprocess": OmegaConf.to_container(preprocess_cfg, resolve=True),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def store_path(data_dir: Path, dataset_cfg: DictConfig, preprocess_cfg: DictConfig, source) -> Path:
    key = dataset_key(preprocess_cfg, source.fingerprint())
    return Path(data_dir) / dataset_cfg.name / f"{preprocess_cfg.name}-{key}"


def build_dataset(dataset_cfg: DictConfig, preprocess_cfg: DictConfig, data_dir: str | Path,
                  force: bool = False) -> tuple[DatasetStore, bool]:
    """Build (or find) the store for this config. Returns (store, cache_hit)."""
    source = instantiate(dataset_cfg.source)
    preprocess = instantiate(preprocess_cfg)  # a bad preprocess value fails before any reading
    final = store_path(Path(data_dir), dataset_cfg, preprocess_cfg, source)
    workdir = final.parent
    remove_stale_temp(workdir)
    problem = None
    if (final / MANIFEST).exists() and not force:
        problem = store_problem(final, MANIFEST, _sha256)
        if problem is None:
            log.info("cache hit: %s", final)
            return DatasetStore(final), True
        log.warning("the store %s is damaged (%s): rebuilding it", final, problem)
    tmp = need = None
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        prepared = preprocess(source.load(workdir))
        need = _estimated_bytes(prepared)
        check_free_space(workdir, need)
        tmp = partial_dir(workdir, final.name)
        _write(tmp, prepared, dataset_cfg, preprocess_cfg, source)
        write_stamp(tmp, json.loads((tmp / MANIFEST).read_text())["checksums"])  # just hashed by _write
        _replace(tmp, final)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            workdir.rmdir()  # only when empty: bad input leaves no trace, other builds and raw exports stay
        error = disk_error(exc, workdir, need)
        if problem and isinstance(error or exc, StfBenchError):
            raise DataError(f"{final} is damaged ({problem}) and rebuilding it failed: {error or exc}") from exc
        if error is not None:
            raise error from exc
        raise
    return DatasetStore(final), False


def _estimated_bytes(prep: Prepared) -> int:
    """Disk a store of `prep` takes at most: the three arrays plus the GeoTIFFs uncompressed."""
    # per value of the (T, 2, H, W) stack: float32 + 2 bool .npy, and L/M float32 + Q uint8 GeoTIFF bands
    return prep.values.size * (4 + 1 + 1 + 4 + 1)


def _write(folder: Path, prep: Prepared, dataset_cfg: DictConfig, preprocess_cfg: DictConfig, source) -> None:
    for k, date in enumerate(tqdm(prep.dates, desc="writing GeoTIFFs", unit="date")):
        tag = date.strftime("%Y%m%d")
        write_geotiff(folder / f"L_{tag}.tif", prep.values[k, 0], prep.grid, units="K", date=date.isoformat())
        write_geotiff(folder / f"M_{tag}.tif", prep.values[k, 1], prep.grid, units="K", date=date.isoformat())
        flags = (prep.observed[k].astype(np.uint8) | (prep.filled[k].astype(np.uint8) << 1))
        write_geotiff(folder / f"Q_{tag}.tif", flags, prep.grid, nodata=None,
                      bands="1=fine 2=coarse", flags="bit0=observed bit1=filled")
    quicklook(folder / QUICKLOOK, [d.isoformat() for d in prep.dates], prep.values, prep.observed)
    np.save(folder / VALUES, np.ascontiguousarray(prep.values, dtype=np.float32))
    np.save(folder / OBSERVED, prep.observed)
    np.save(folder / FILLED, prep.filled)
    n = prep.values[0, 0].size
    manifest = {
        "format": FORMAT_VERSION,
        "dataset": {"name": dataset_cfg.name, "data_range_k": dataset_cfg.data_range_k},
        "variant": preprocess_cfg.name,
        "coarse_block": {"rows": prep.coarse_block[0], "cols": prep.coarse_block[1]},
        "misregistration": _misregistration_summary(prep, preprocess_cfg),
        "preprocess": OmegaConf.to_container(preprocess_cfg, resolve=True),
        "cross_date_fill": cross_date_fill(instantiate(preprocess_cfg), source),
        "source_fingerprint": source.fingerprint(),
        "units": "K",
        "nodata": "NaN",
        "grid": prep.grid.to_json(),
        "dates": [
            {
                "date": date.isoformat(),
                "fine_source": prep.sources[k][0],
                "coarse_source": prep.sources[k][1],
                "fine_valid": float(prep.observed[k, 0].sum() / n),
                "fine_filled": float(prep.filled[k, 0].sum() / n),
                "coarse_valid": float(prep.observed[k, 1].sum() / n),
                "coarse_filled": float(prep.filled[k, 1].sum() / n),
                "implausible": prep.implausible[k],
                **({} if prep.misregistration is None else {"misregistration_mean_km": prep.misregistration[k][0],
                                                            "misregistration_max_km": prep.misregistration[k][1]}),
            }
            for k, date in enumerate(prep.dates)
        ],
        "checksums": {name: _sha256(folder / name) for name in (VALUES, OBSERVED, FILLED)},
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.name != MANIFEST},
        "code_version": _code_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))


def _misregistration_summary(prep: Prepared, preprocess_cfg: DictConfig) -> dict | None:
    """Over all dates, how far the resize misplaces MODIS against its georeference; None when it is placed by it."""
    if prep.misregistration is None:
        return None
    means, maxes = zip(*prep.misregistration)
    return {"mean_km": float(np.mean(means)), "max_km": float(np.max(maxes)),
            "warn_m": preprocess_cfg.get("misregistration_warn_m"),
            "against": "the coarse georeference, at fine pixel centres (65 x 65 lattice, great-circle distances)"}


def _replace(tmp: Path, final: Path) -> None:
    """Atomically put the finished folder in place (moving any older build aside first)."""
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(stf_bench.__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{stf_bench.__version__}+{commit}" if commit else stf_bench.__version__
