"""The leaderboard in W&B: one evaluation run with its own config, numeric tables, per-method summaries and figures.

It joins the W&B group of the training runs it scored (their sweep) when they share one, and lists their run ids,
so the evaluation sits beside the runs it ranks. Offline unless a key is configured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stf_bench.evaluation.leaderboard import METRICS

NUMERIC = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")] + [
    "rmse_pooled_mean", "n_runs", "params", "macs_g", "inference_s", "train_s", "train_peak_mb", "n_test_scenes",
    "data_range_k"]
TEXT = ["name", "model", "label", "family", "dataset", "store_hash", "variant", "split", "pairing", "context",
        "recipe", "device"]


def training_group(runs: pd.DataFrame, configs: dict[str, dict]) -> str | None:
    """The W&B group the scored training runs share (their sweep or experiment), if they share exactly one."""
    def group(cfg: dict) -> str | None:
        wandb_cfg = (cfg.get("logger") or {}).get("wandb") or {}
        return wandb_cfg.get("group") or cfg.get("experiment_name")

    groups = {group(configs.get(run) or {}) for run in runs["run"] if run}
    groups.discard(None)
    return groups.pop() if len(groups) == 1 else None


def leaderboard_table(table: pd.DataFrame):
    """A W&B Table whose metric columns are numbers (mean and std apart), so W&B can sort and plot them."""
    import wandb

    columns = [c for c in TEXT if c in table] + [c for c in NUMERIC if c in table]
    frame = table[columns].copy()
    for col in columns:
        if col in NUMERIC:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        else:
            frame[col] = frame[col].astype(str)
    return wandb.Table(dataframe=frame)


def log_leaderboard(project: str, group: str | None, config: dict, out_dir: Path, table: pd.DataFrame,
                    per_scene: pd.DataFrame, runs: pd.DataFrame, images: dict[str, np.ndarray]) -> str:
    """One W&B run of job type 'evaluate'; returns its id."""
    import wandb

    from stf_bench.wandb_mode import wandb_mode_default

    wandb_mode_default()
    scored = sorted({r for r in runs.get("wandb_run_id", pd.Series(dtype=str)) if isinstance(r, str) and r})
    run = wandb.init(project=project, group=group, job_type="evaluate", dir=str(out_dir), reinit="finish_previous",
                     name=f"evaluate-{out_dir.name}",
                     config={**config, "scored_training_runs": scored,
                             "scored_run_folders": sorted({r for r in runs["run"] if r})})
    per_scene_numeric = per_scene.copy()
    for col in per_scene_numeric.columns:
        if per_scene_numeric[col].dtype == object:
            per_scene_numeric[col] = per_scene_numeric[col].astype(str)
    run.log({
        "leaderboard": leaderboard_table(table),
        "per_scene": wandb.Table(dataframe=per_scene_numeric),
        **{f"figures/{name}": wandb.Image(image) for name, image in images.items()},
    })
    for _, row in table.iterrows():
        key = f"{row['name']}/{row['dataset']}-{row['store_hash']}-{row['context']}"
        for metric in METRICS:
            value = row.get(f"{metric}_mean")
            if value is not None and np.isfinite(value):
                run.summary[f"{key}/{metric}"] = float(value)
    run_id = run.id
    run.finish()
    return run_id
