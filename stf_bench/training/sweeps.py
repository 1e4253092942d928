"""Optuna sweeps: a sampler that a resumed study does not replay, and each trial's run folder and checkpoint.

A TPESampler with a fixed seed draws the same startup parameters in every process, so re-running a sweep to resume
its study repeated the first trials exactly. The sampler is seeded with the configured seed plus the number of trials
already in the study (`${study_seed:...}` in conf/hparams_search): the same study history gives the same draws
(reproducible), a resumed study new ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stf_bench.run_folder import RUN_JSON, write_run_json


def _trials(storage: str | None, study_name: str | None) -> list:
    import optuna

    if storage is None or study_name is None:
        return []
    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    except KeyError:  # no such study yet
        return []


def study_seed(seed: int | None, storage: str | None, study_name: str | None) -> int | None:
    """The sampler's seed: `seed` plus the trials already in the study (None stays None: unseeded)."""
    return None if seed is None else int(seed) + len(_trials(storage, study_name))


def study_size(sweeper_cfg) -> int:
    """Trials in the sweeper's study before this sweep (0 for no study or another sweeper)."""
    return len(_trials(sweeper_cfg.get("storage"), sweeper_cfg.get("study_name")))


def _job_params(folder: Path) -> dict[str, str]:
    overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) or []
    return dict(o.split("=", 1) for o in overrides if "=" in o)


def trial_rows(sweeper_cfg, sweep_dir: Path, first: int) -> list[dict]:
    """Each job of this sweep with its trial: number, params, value, state, run folder and best checkpoint.

    Hydra numbers the jobs of a sweep from 0 in the order Optuna asks for the trials, which are numbered on from the
    `first` trials the study held before; the job's overrides must hold the trial's parameters (checked).
    """
    trials = {t.number: t for t in _trials(sweeper_cfg.get("storage"), sweeper_cfg.get("study_name"))}
    rows = []
    for folder in sorted((p for p in sweep_dir.iterdir() if p.name.isdigit() and (p / ".hydra").is_dir()),
                         key=lambda p: int(p.name)):
        trial = trials.get(first + int(folder.name))
        job = _job_params(folder)
        if trial is None or any(job.get(k) != str(v) for k, v in trial.params.items()):
            continue  # not a job of this study's trials (another process shares the study)
        run = json.loads((folder / RUN_JSON).read_text()) if (folder / RUN_JSON).is_file() else {}
        rows.append({"number": trial.number, "params": dict(trial.params), "value": trial.value,
                     "state": trial.state.name, "run": str(folder),
                     "checkpoint": (run.get("checkpoints") or {}).get("best")})
    return rows


def record_trials(sweeper_cfg, sweep_dir: Path, first: int) -> dict | None:
    """Writes each trial into its run.json and all of them into optimization_results.yaml; returns the best row
    of this sweep (by the sweeper's direction), or None without trials."""
    rows = trial_rows(sweeper_cfg, sweep_dir, first)
    for row in rows:
        run_json = Path(row["run"]) / RUN_JSON
        if run_json.is_file():
            info = json.loads(run_json.read_text())
            info["trial"] = {k: row[k] for k in ("number", "params", "value", "state")}
            write_run_json(run_json.parent, info)
    done = [r for r in rows if r["value"] is not None]
    if not done:
        return None
    maximize = "max" in str(getattr(sweeper_cfg.get("direction"), "name", sweeper_cfg.get("direction"))).lower()
    best = (max if maximize else min)(done, key=lambda r: r["value"])
    results_file = sweep_dir / "optimization_results.yaml"
    results = yaml.safe_load(results_file.read_text()) if results_file.is_file() else {"name": "optuna"}
    results.update(trials=rows, best_run=best["run"], best_checkpoint=best["checkpoint"])
    results_file.write_text(yaml.safe_dump(results, sort_keys=False))
    return best
