"""Score every finished run and the classical baselines on whole test scenes; write the leaderboard.

python evaluate.py [runs=outputs/train/multirun/<sweep>] [baselines=[persistence,coarse,delta,starfm]]
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from stf_bench.errors import exit_on_user_error
from stf_bench.resolvers import register

register()

CONF_DIR = Path(__file__).parent / "conf"
COLUMNS = ["Model", "Source", "Dataset", "Store", "Variant", "Split", "Pairing", "Seeds", "RMSE [K]", "Bias [K]",
           "ubRMSE [K]", "SSIM", "PSNR [dB]", "Skill vs delta", "Params", "Inference [s/scene]"]


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from stf_bench.evaluation.evaluate import evaluate
    from stf_bench.evaluation.leaderboard import write_leaderboard
    from stf_bench.evaluation.wandb_log import log_leaderboard, training_group

    out_dir = Path(cfg.paths.output_dir)
    result = evaluate(cfg, CONF_DIR)
    table, shown, images = write_leaderboard(result, out_dir, cfg.border)
    if cfg.wandb.enabled:
        group = cfg.wandb.group or training_group(result["runs"], result["configs"]) or cfg.task_name
        log_leaderboard(cfg.wandb.project, group, OmegaConf.to_container(cfg, resolve=True), out_dir, table,
                        result["per_scene"], result["runs"], images)
    console = Console()
    console.width = max(console.width, 200)  # the table is the point of the command, also in a log file
    rich_table = Table(title="stf_bench leaderboard", caption=f"{out_dir}/leaderboard.md (.csv .tex .html), figures/")
    for col in COLUMNS:
        rich_table.add_column(col, justify="left" if col in COLUMNS[:7] else "right")
    for _, row in shown.iterrows():
        rich_table.add_row(*(str(row[c]) for c in COLUMNS))
    console.print(rich_table)
    for failure in result["failed"]:
        console.print(Text.assemble(("not scored", "yellow"), f": {failure['method']} in {failure['context']}: "
                                    f"{failure['reason']}"))


if __name__ == "__main__":
    main()
