"""The dataset store: cache hits, rebuilds, the manifest, atomic writes; and `python prepare.py` end to end."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from data_fixtures import FINE_SHAPE, FINE_TRANSFORM, UTM31N, compose, dates, make_raw, run_prepare

import stf_bench
import stf_bench.data.store as store_module
from stf_bench.data.scene import Grid
from stf_bench.data.store import MANIFEST, build_dataset
from stf_bench.errors import DataError

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


# -- issue 9: a cache hit is verified; killed builds, umask, read-only and full disks ---------------------------------
def test_a_flipped_byte_is_found_and_the_store_rebuilt(raw, tmp_path, caplog):
    store, _ = build(raw, tmp_path)
    good = np.array(store.values)
    values = store.path / "values.npy"
    with open(values, "r+b") as fh:  # one flipped byte in the data: 300 K became garbage, the size is unchanged
        fh.seek(values.stat().st_size - 5)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    again, hit = build(raw, tmp_path)
    assert not hit and "values.npy does not match its checksum in manifest.json" in caplog.text
    assert "rebuilding it" in caplog.text
    np.testing.assert_array_equal(again.values, good)
    assert leftovers(tmp_path) == []


def test_checksums_are_verified_once_per_store_and_sizes_on_every_hit(raw, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="stf_bench.data.store_safety")
    store, _ = build(raw, tmp_path)
    stamp = json.loads((store.path / "verified.json").read_text())
    assert set(stamp) == set(store.manifest["checksums"])
    assert set(store.manifest["files"]) >= {"values.npy", "quicklook.png", f"L_{DAYS[0]:%Y%m%d}.tif"}
    time.sleep(0.02)
    build(raw, tmp_path)  # a build in the same clock tick as its record is re-hashed once (git's racy-clean rule)
    hashed, real = [], store_module._sha256
    monkeypatch.setattr(store_module, "_sha256", lambda path: hashed.append(path.name) or real(path))
    _, hit = build(raw, tmp_path)
    assert hit and hashed == []  # recorded: later hits only compare sizes and mtimes
    (store.path / "verified.json").unlink()
    _, hit = build(raw, tmp_path)  # no record: every checksum is read once, and recorded again
    assert hit and hashed == ["filled.npy", "observed.npy", "values.npy"]
    assert "verified the checksums of filled.npy, observed.npy, values.npy" in caplog.text
    assert (store.path / "verified.json").is_file()


@pytest.mark.parametrize("damage", ["deleted L_*.tif", "truncated values.npy", "truncated manifest",
                                    "store written before the manifest listed its files"])
def test_a_damaged_store_is_rebuilt_with_a_message(raw, tmp_path, caplog, damage):
    store, _ = build(raw, tmp_path)
    tif = store.path / f"L_{DAYS[1]:%Y%m%d}.tif"
    if damage == "deleted L_*.tif":
        tif.unlink()
        expected = f"L_{DAYS[1]:%Y%m%d}.tif is missing"
    elif damage == "truncated values.npy":
        os.truncate(store.path / "values.npy", 1000)
        expected = "values.npy has 1000 bytes, the manifest says"
    elif damage == "truncated manifest":
        os.truncate(store.path / MANIFEST, 100)
        expected = "manifest.json is unreadable (JSONDecodeError"
    else:
        manifest = json.loads((store.path / MANIFEST).read_text())
        del manifest["files"]
        (store.path / MANIFEST).write_text(json.dumps(manifest))
        tif.unlink()
        expected = f"L_{DAYS[1]:%Y%m%d}.tif is missing"
    again, hit = build(raw, tmp_path)
    assert not hit and f"the store {store.path} is damaged ({expected}" in caplog.text
    assert tif.is_file() and again.values.shape == (3, 2, *FINE_SHAPE) and leftovers(tmp_path) == []
    assert build(raw, tmp_path)[1]


def test_a_damaged_store_that_cannot_be_rebuilt_is_refused_with_the_fix(raw, tmp_path, monkeypatch):
    store, _ = build(raw, tmp_path)
    os.truncate(store.path / MANIFEST, 100)
    read_only_under(tmp_path, monkeypatch)
    with pytest.raises(DataError, match=r"is damaged \(manifest.json is unreadable .*\) and rebuilding it failed: "
                                        r"cannot write .*paths.data_dir=<a writable folder>"):
        build(raw, tmp_path)


def read_only_under(root, monkeypatch):
    """Make `root` behave like a read-only mount for folder creation (the tests may run as root, so chmod won't)."""
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def test_stale_temp_folders_of_dead_builds_are_removed(raw, tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    folder = tmp_path / "folder"
    stale = [folder / f".stf_lst-0123456789.partial-{dead_pid}", folder / f".raw-0123456789.partial-{dead_pid}"]
    live = folder / f".raw-9876543210.partial-{os.getppid()}"  # a build still running (our parent process)
    for d in (*stale, live):
        d.mkdir(parents=True)
        (d / "values.npy").write_bytes(b"x" * 2_000_000)
    build(raw, tmp_path)
    assert not any(d.exists() for d in stale) and live.is_dir()
    assert f"removed {stale[0]} (2 MB), left by build process {dead_pid}, which is no longer running" in caplog.text


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_store_permissions_follow_the_umask(raw, tmp_path, umask):
    old = os.umask(umask)
    try:
        store, _ = build(raw, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((store.path / "values.npy").stat().st_mode) == 0o666 & ~umask


def test_a_read_only_data_folder_is_a_message(raw, tmp_path, monkeypatch):
    read_only_under(tmp_path, monkeypatch)
    with pytest.raises(DataError, match=rf"cannot write the dataset under {tmp_path}/folder: Read-only file system"
                                        r".*paths.data_dir=<a writable folder>"):
        build(raw, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_a_message_and_leaves_nothing(raw, tmp_path, monkeypatch):
    need_mb = round(3 * 2 * FINE_SHAPE[0] * FINE_SHAPE[1] * 11 / 1e6)  # T x 2 x H x W values, 11 bytes each on disk
    free = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free._replace(free=50_000))
    with pytest.raises(DataError, match=rf"no space left under {tmp_path}/folder; this build needs about {need_mb} MB"
                                        r" \(0 MB are free\).*paths.data_dir="):
        build(raw, tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "quicklook", disk_full)  # ENOSPC half-way through writing
    with pytest.raises(DataError, match=rf"no space left under {tmp_path}/folder; this build needs about {need_mb} MB"
                                        r" \(the disk filled up while writing\)"):
        build(raw, tmp_path)
    assert list(tmp_path.iterdir()) == []
