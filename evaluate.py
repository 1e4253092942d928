"""Score every finished run and the classical baselines on whole test scenes; write the leaderboard.

python evaluate.py [runs=outputs/train/multirun/<sweep>] [baselines=[persistence,coarse,delta,starfm]]
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from stf_bench.errors import exit_on_user_error
from stf_bench.resolvers import register

register()

CONF_DIR = Path(__file__).parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    from stf_bench.evaluation.evaluate import evaluate
    from stf_bench.evaluation.leaderboard import write_leaderboard
    from stf_bench.evaluation.wandb_log import log_leaderboard

    out_dir = Path(cfg.paths.output_dir)
    result = evaluate(cfg, CONF_DIR)
    shown, images = write_leaderboard(result, out_dir, cfg.border)
    if cfg.wandb.enabled:
        log_leaderboard(cfg.wandb.project, cfg.wandb.group, out_dir, shown, result["per_scene"], images)
    table = Table(title="stf_bench leaderboard", caption=f"{out_dir}/leaderboard.md (.csv .tex .html), figures/")
    columns = ["Model", "Source", "Dataset", "Pairing", "Seeds", "RMSE [K]", "Bias [K]", "ubRMSE [K]", "SSIM", "PSNR [dB]",
               "Skill vs delta", "Params", "Inference [s/scene]"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("Model", "Source", "Dataset", "Pairing") else "right")
    for _, row in shown.iterrows():
        table.add_row(*(str(row[c]) for c in columns))
    console = Console()
    console.width = max(console.width, 180)  # the table is the point of the command, also in a log file
    console.print(table)


if __name__ == "__main__":
    main()
