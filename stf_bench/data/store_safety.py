"""What keeps a dataset store trustworthy on disk: verification of a cache hit, temporary build folders that a
killed build cannot leave behind for ever, and disk errors turned into messages (issue 9).

Verification. Every cache hit checks that the manifest parses and that every file it lists (``files``: name → size,
or for stores written before that field, the ``checksums`` arrays and the dates' GeoTIFFs) exists with its size.
The content checksums (SHA-256, the manifest's) cost 1.2–2 s on the 51 × 950² synthetic store (552 MB), so they are
verified once per store and recorded in ``verified.json`` with each file's size and mtime (the build records its
own); later hits compare those only (~2 ms). A file whose mtime is not older than the record itself is re-hashed
(git's "racy clean" rule), so a change within the same clock tick as the record cannot hide.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from stf_bench.errors import DataError

log = logging.getLogger(__name__)

STAMP = "verified.json"
# ".<name>.partial-<pid>" while a build writes, ".<name>.old-<pid>" while it swaps a store in.
_TEMP = re.compile(r"^\..+\.(?:partial|old)-(\d+)$")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR)


# -- verification ---------------------------------------------------------------------------------------------------
def store_problem(path: Path, manifest_name: str, sha256) -> str | None:
    """Why the store at `path` cannot be trusted, or None. `sha256(path) -> hex` is the manifest's hash."""
    try:
        manifest = json.loads((path / manifest_name).read_text())
        checksums = dict(manifest["checksums"])
        expected = manifest.get("files") or _legacy_files(manifest, checksums)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{manifest_name} is unreadable ({type(exc).__name__}: {exc})"
    for name, size in sorted(expected.items()):
        try:
            actual = (path / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if size is not None and actual != size:
            return f"{name} has {actual} bytes, the manifest says {size}"
    stamp = _read_stamp(path)
    started, hashed = time.perf_counter(), []
    for name, digest in sorted(checksums.items()):
        if _stamped(path / name, digest, stamp.get(name), stamp.get("_stamp_mtime_ns", 0)):
            continue
        try:
            actual = sha256(path / name)
        except OSError as exc:
            return f"{name} is unreadable ({exc})"
        if actual != digest:
            return f"{name} does not match its checksum in {manifest_name}"
        hashed.append(name)
    if hashed:
        log.info("verified the checksums of %s in %s (%.1f s)", ", ".join(hashed), path,
                 time.perf_counter() - started)
        write_stamp(path, checksums)
    return None


def write_stamp(path: Path, checksums: dict) -> None:
    """Record that the files of `checksums` match it as they are now; a read-only store just stays unrecorded."""
    record = {}
    for name, digest in checksums.items():
        st = (path / name).stat()
        record[name] = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        (path / STAMP).write_text(json.dumps(record, indent=1))
    except OSError as exc:
        log.debug("could not record the verification of %s: %s", path, exc)


def _legacy_files(manifest: dict, checksums: dict) -> dict:
    """Stores written before the manifest listed its files: the checksummed arrays and each date's GeoTIFFs."""
    tags = [d["date"].replace("-", "") for d in manifest["dates"]]
    return {**{name: None for name in checksums}, **{f"{p}_{t}.tif": None for t in tags for p in "LMQ"}}


def _read_stamp(path: Path) -> dict:
    try:
        stamp = json.loads((path / STAMP).read_text())
        stamp["_stamp_mtime_ns"] = (path / STAMP).stat().st_mtime_ns
        return stamp
    except (OSError, ValueError, TypeError):
        return {}


def _stamped(file: Path, digest: str, entry, stamp_mtime_ns: int) -> bool:
    if not isinstance(entry, dict):
        return False
    st = file.stat()
    return (entry.get("sha256") == digest and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns and st.st_mtime_ns < stamp_mtime_ns)


# -- temporary folders ----------------------------------------------------------------------------------------------
def partial_dir(parent: Path, name: str) -> Path:
    """A fresh `.<name>.partial-<pid>` build folder, with the permissions the user's umask gives (not mkdtemp's 0700).

    The pid in the name lets a later build tell a crashed build's leftovers from a running one's.
    """
    tmp = parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # only this process can own this name
    tmp.mkdir()
    return tmp


def remove_stale_temp(folder: Path) -> None:
    """Delete the temporary folders under `folder` whose build process is gone (killed with -9, power cut)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _TEMP.match(entry.name)
        if not match or _alive(int(match.group(1))):
            continue
        size_mb = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file()) / 1e6 if entry.is_dir() else 0.0
        try:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError as exc:
            log.warning("could not remove %s, left by a build that is no longer running: %s", entry, exc)
            continue
        log.warning("removed %s (%.0f MB), left by build process %s, which is no longer running",
                    entry, size_mb, match.group(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


# -- disk errors ----------------------------------------------------------------------------------------------------
def check_free_space(folder: Path, need_bytes: int) -> None:
    """Refuse a build that cannot fit before writing anything."""
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise DataError(_no_space(folder, need_bytes, f"{free / 1e6:.0f} MB are free"))


def disk_error(exc: BaseException, folder: Path, need_bytes: int | None) -> DataError | None:
    """The user-facing error for a full disk or a folder that cannot be written, or None for anything else."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in _NO_SPACE or "No space left on device" in str(exc):
        return DataError(_no_space(folder, need_bytes, "the disk filled up while writing"))
    if exc.errno in _CANNOT_WRITE:
        return DataError(
            f"cannot write the dataset under {folder}: {exc.strerror or exc} ({exc.filename or folder}). Make the "
            f"folder writable, or build elsewhere with paths.data_dir=<a writable folder>."
        )
    return None


def _no_space(folder: Path, need_bytes: int | None, detail: str) -> str:
    need = f"; this build needs about {need_bytes / 1e6:.0f} MB" if need_bytes else ""
    return (f"no space left under {folder}{need} ({detail}). Free some space there, or build elsewhere with "
            f"paths.data_dir=<a folder with room>.")
