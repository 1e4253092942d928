"""The table that ends a `train.py --multirun`: every job's status, the reason when it did not finish, its folder.

An Optuna sweep also gets each trial's number, parameters, value, run folder and best checkpoint, in the sweep's
`optimization_results.yaml` and in each trial's run.json, and ends with its best run and the command that scores it.

Hydra stops a sweep by raising the first failed job's error, and then skips `on_multirun_end`; the table is therefore
also printed at interpreter exit, once, so a sweep with failures still lists every job.
"""

from __future__ import annotations

import atexit
import json
import logging
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stf_bench.run_folder import RUN_JSON
from stf_bench.training.sweeps import record_trials, study_size

log = logging.getLogger(__name__)


def job_rows(sweep_dir: Path) -> list[dict]:
    """One row per job folder (a subfolder with Hydra's `.hydra`), in job order, read from its run.json."""
    rows = []
    folders = [p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()] if sweep_dir.is_dir() else []
    for folder in sorted(folders, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)):
        overrides_file = folder / ".hydra" / "overrides.yaml"
        overrides = " ".join(yaml.safe_load(overrides_file.read_text()) or []) if overrides_file.is_file() else ""
        run_json = folder / RUN_JSON
        info = json.loads(run_json.read_text()) if run_json.is_file() else {"status": "no run.json"}
        rows.append({"job": folder.name, "status": info.get("status"), "overrides": overrides,
                     "reason": info.get("error") or info.get("reason") or "", "folder": str(folder)})
    return rows


def format_table(rows: list[dict], width: int = 60) -> str:
    def cut(text: str) -> str:
        return text if len(text) <= width else text[: width - 3] + "..."

    header = {"job": "job", "status": "status", "overrides": "overrides", "reason": "reason", "folder": "run folder"}
    cells = [header] + [{k: cut(str(v)) if k in ("overrides", "reason") else str(v) for k, v in r.items()}
                        for r in rows]
    widths = {k: max(len(c[k]) for c in cells) for k in header}
    lines = ["  ".join(c[k].ljust(widths[k]) for k in header).rstrip() for c in cells]
    return "\n".join([lines[0], "  ".join("-" * widths[k] for k in header), *lines[1:]])


class SweepReport(Callback):
    """Hydra callback (conf/train.yaml): logs the job table when the sweep ends, however it ends."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.optuna: DictConfig | None = None  # the Optuna sweeper's config
        self.first_trial = 0                   # trials in the study before this sweep

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        if "optuna" in str(config.hydra.sweeper.get("_target_", "")):
            self.optuna, self.first_trial = config.hydra.sweeper, study_size(config.hydra.sweeper)
        atexit.register(self.report)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self.report()

    def report(self) -> None:
        if self.sweep_dir is None:
            return
        sweep_dir, self.sweep_dir = self.sweep_dir, None  # once
        rows = job_rows(sweep_dir)
        if not rows:
            return
        counts = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        log.info("sweep %s: %d jobs (%s)\n%s", sweep_dir, len(rows), summary, format_table(rows))
        best = record_trials(self.optuna, sweep_dir, self.first_trial) if self.optuna is not None else None
        if best is not None:
            log.info("best trial of this sweep: #%d, value %s, params %s\n  run folder %s\n  checkpoint %s\n"
                     "  score it: python evaluate.py runs=%s", best["number"], best["value"], best["params"],
                     best["run"], best["checkpoint"], best["run"])
