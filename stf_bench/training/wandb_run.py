"""One W&B run per training job, under every launcher: named, grouped, finished when the job ends.

`wandb.run` is global to the process: a local --multirun (basic launcher, Optuna, `make demo`) runs its jobs in one
process, and Lightning's WandbLogger adopts a run that is still open. So every job finishes its own run (failed jobs
with a non-zero exit code, which W&B shows as failed) and the next job starts a new one.
"""

from __future__ import annotations

import sys

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def make_loggers(cfg: DictConfig, ids: dict) -> list:
    """The experiment loggers of `cfg.logger`, with the config as hyper-parameters and the W&B run's tags."""
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if type(lg).__name__ == "WandbLogger":
            run = lg.experiment
            run.tags = tuple({*run.tags, cfg.model.id, cfg.model.family, ids["name"], ids["variant"], ids["split"],
                              f"seed{cfg.seed}", cfg.model.label})
            # Lightning steps every metric by trainer/global_step; the summary keeps the best, not the last, RMSE
            run.define_metric("val/rmse", step_metric="trainer/global_step", summary="min")
    return loggers


def finish_wandb(exit_code: int) -> dict:
    """Finish this job's W&B run, if one is open; returns {"wandb_run_id": id} for run.json (else {})."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return {}
    run_id = wandb.run.id
    wandb.finish(exit_code=exit_code)
    return {"wandb_run_id": run_id}
