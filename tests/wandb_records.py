"""Read an offline W&B run (``offline-run-*/run-*.wandb``) back into plain Python, so tests check what W&B would show.

The file is a log of length-prefixed protobuf ``Record`` messages in 32 KiB blocks (the LevelDB log format, after a
7-byte ``:W&B`` header); wandb 0.31 writes no summary or config files for offline runs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, parts = Path(path).read_bytes(), HEADER, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        parts = chunk if kind in (FULL, FIRST) else parts + chunk
        if kind in (FULL, LAST):
            yield pb.Record.FromString(parts)


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_offline_run(folder: Path, wait_s: float = 30.0) -> dict:
    """run_id, name, group, job_type, tags, config, summary (last value per key), history rows, exit_code, metrics.

    W&B's writer process may still be flushing after ``wandb.finish()`` returned: read until the exit record is there.
    """
    import time

    (path,) = Path(folder).glob("run-*.wandb")
    deadline = time.monotonic() + wait_s
    found = list(records(path))
    while not any(r.WhichOneof("record_type") == "exit" for r in found) and time.monotonic() < deadline:
        time.sleep(0.5)
        found = list(records(path))
    run = {"config": {}, "summary": {}, "history": [], "exit_code": None, "metrics": {}}
    for record in found:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(run_id=r.run_id, name=r.display_name, group=r.run_group, job_type=r.job_type,
                       tags=list(r.tags))
            run["config"].update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "config":
            run["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "summary":
            run["summary"].update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif kind == "history":
            run["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "metric":
            run["metrics"][record.metric.name] = record.metric
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run
