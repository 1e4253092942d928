"""The leaderboard in W&B: tables and figures in one evaluation run (offline unless a key is configured)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stf_bench.training.pipeline import wandb_mode_default


def log_leaderboard(project: str, group: str, out_dir: Path, shown: pd.DataFrame, per_scene: pd.DataFrame,
                    images: dict[str, np.ndarray]) -> str:
    """Returns the local W&B run folder."""
    import wandb

    wandb_mode_default()
    run = wandb.init(project=project, group=group, job_type="evaluate", dir=str(out_dir), reinit="finish_previous")
    run.log({
        "leaderboard": wandb.Table(dataframe=shown.astype(str)),
        "per_scene": wandb.Table(dataframe=per_scene.astype({c: str for c in per_scene.columns
                                                             if per_scene[c].dtype == object})),
        **{f"figures/{name}": wandb.Image(image) for name, image in images.items()},
    })
    folder = run.dir
    run.finish()
    return folder
