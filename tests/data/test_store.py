"""The dataset store: cache hits, rebuilds, the manifest, atomic writes; and `python prepare.py` end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import numpy as np
import pytest
from data_fixtures import FINE_SHAPE, FINE_TRANSFORM, UTM31N, compose, dates, make_raw, run_prepare

import stf_bench
import stf_bench.data.store as store_module
from stf_bench.data.scene import Grid
from stf_bench.data.store import MANIFEST, build_dataset

DAYS = dates(3)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("raw"), DAYS)


def build(raw, data_dir, *overrides, force=False):
    cfg = compose("dataset=folder", f"dataset.source.root={raw}", *overrides)
    return build_dataset(cfg.dataset, cfg.preprocess, data_dir, force=force)


def leftovers(data_dir):
    """Anything under the data dir that is not a finished store folder (temp, .old or .part files)."""
    return [p for p in data_dir.rglob(".*")]


def test_same_config_is_a_cache_hit_and_force_rebuilds(raw, tmp_path):
    store, hit = build(raw, tmp_path)
    assert not hit and store.path.parent == tmp_path / "folder" and store.path.name.startswith("reproject-")
    manifest = store.path / MANIFEST
    first = manifest.stat()
    again, hit = build(raw, tmp_path)
    assert hit and again.path == store.path
    assert manifest.stat().st_ino == first.st_ino and manifest.stat().st_mtime_ns == first.st_mtime_ns
    rebuilt, hit = build(raw, tmp_path, force=True)
    assert not hit and rebuilt.path == store.path and manifest.stat().st_ino != first.st_ino
    assert [p.name for p in (tmp_path / "folder").iterdir()] == [store.path.name]  # the old build is gone
    assert leftovers(tmp_path) == []


def test_a_changed_config_or_input_builds_a_new_folder(tmp_path_factory, tmp_path):
    raw = make_raw(tmp_path_factory.mktemp("raw_changed"), DAYS)
    base, _ = build(raw, tmp_path)
    nofill, hit = build(raw, tmp_path, "preprocess=nofill")
    assert not hit and nofill.path.name.startswith("nofill-")
    excluded, hit = build(raw, tmp_path, f"dataset.source.exclude=[{DAYS[1].isoformat()}]")
    assert not hit and excluded.path.name.startswith("reproject-") and excluded.path != base.path
    assert excluded.dates == [DAYS[0], DAYS[2]]
    edit = raw / "MODIS" / f"{DAYS[2]:%Y_%m_%d}.tif"
    edit.write_bytes((raw / "MODIS" / f"{DAYS[1]:%Y_%m_%d}.tif").read_bytes())  # same size, other values
    os.utime(edit, ns=(edit.stat().st_atime_ns, edit.stat().st_mtime_ns + 1_000_000))  # 1 ms later suffices
    edited, hit = build(raw, tmp_path)  # same config, but an input file changed
    assert not hit and edited.path not in (base.path, excluded.path)
    assert len(list((tmp_path / "folder").iterdir())) == 4


def test_manifest_describes_the_store(raw, tmp_path):
    store, _ = build(raw, tmp_path)
    m = store.manifest
    assert m["units"] == "K" and m["nodata"] == "NaN" and m["variant"] == "reproject" == store.variant
    assert store.name == "folder" and m["dataset"]["data_range_k"] == 60.0
    assert m["preprocess"]["regrid"] == "reproject" and m["preprocess"]["resampling"] == "average" and m["source_fingerprint"]["root"] == str(raw.resolve())
    assert [f[0] for f in m["source_fingerprint"]["files"]][:2] == [f"Landsat/LC08_199027_{DAYS[0]:%Y%m%d}.tif",
                                                                    f"Landsat/LC08_199027_{DAYS[1]:%Y%m%d}.tif"]
    assert store.grid == Grid.from_rasterio(UTM31N, FINE_TRANSFORM, *FINE_SHAPE)
    assert store.dates == DAYS and [d["date"] for d in m["dates"]] == [d.isoformat() for d in DAYS]
    assert m["code_version"].startswith(stf_bench.__version__)
    assert dt.datetime.fromisoformat(m["created"]).tzinfo is not None
    assert store.values.shape == (3, 2, *FINE_SHAPE) and store.values.dtype == np.float32
    assert store.observed.dtype == bool and store.filled.dtype == bool
    n = FINE_SHAPE[0] * FINE_SHAPE[1]
    for k, entry in enumerate(m["dates"]):
        assert entry["fine_valid"] == pytest.approx(1 - 9 * 12 / n)  # the fixture's cloud, fine_gap(k)
        assert entry["fine_filled"] == pytest.approx(9 * 12 / n)
        assert entry["coarse_valid"] == pytest.approx(store.observed[k, 1].mean())
        assert entry["coarse_filled"] == pytest.approx(store.filled[k, 1].mean())
        assert entry["fine_source"].endswith(f"LC08_199027_{DAYS[k]:%Y%m%d}.tif")
    assert m["dates"][0]["coarse_valid"] < 1.0 == m["dates"][1]["coarse_valid"]
    for name, digest in m["checksums"].items():
        assert hashlib.sha256((store.path / name).read_bytes()).hexdigest() == digest
    assert set(m["checksums"]) == {"values.npy", "observed.npy", "filled.npy"}
    assert (store.path / "quicklook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((store.path / MANIFEST).read_text()) == m


def test_a_failed_write_leaves_nothing(raw, tmp_path, monkeypatch):
    def broken_quicklook(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_module, "quicklook", broken_quicklook)
    with pytest.raises(RuntimeError, match="disk full"):
        build(raw, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_prepare_cli_builds_the_default_synthetic_small(tmp_path):
    result = run_prepare(tmp=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "synthetic_small / reproject  (built)" in result.stdout
    assert result.stdout.count(" % │") == 12 * 4  # 12 dates x 4 fraction columns
    (store,) = (tmp_path / "data" / "synthetic_small").glob("reproject-*")
    assert store.name in result.stdout.replace("\n", "")
    manifest = json.loads((store / MANIFEST).read_text())
    assert len(manifest["dates"]) == 12 and manifest["grid"]["height"] == manifest["grid"]["width"] == 256
    assert leftovers(tmp_path / "data") == []
