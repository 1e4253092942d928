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
COLUMNS = ["Model", "Source", "Seeds", "RMSE [K]", "Bias [K]", "ubRMSE [K]", "SSIM", "PSNR [dB]", "Skill vs delta",
           "Params", "Inference [s/scene]"]
WHOLE = ("Model", "Source")  # never cut: the names are what a reader looks for


def leaderboard_tables(table, shown) -> list:
    """One rich table per evaluation context, titled by it, so the context's columns leave room for whole names.
    All text is escaped: rich would take '[dB]' or a store hash in brackets for markup and drop it."""
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for _, rows in shown.groupby(table["context"], sort=False, dropna=False):
        first = rows.iloc[0]
        tables.append(Table(title=escape(f"stf_bench leaderboard: {first['Dataset']} [{first['Store']}] "
                                         f"{first['Variant']}, split {first['Split']}, pairing {first['Pairing']}")))
        for col in COLUMNS:
            tables[-1].add_column(escape(col), justify="left" if col in WHOLE else "right", no_wrap=col in WHOLE)
        for _, row in rows.iterrows():
            tables[-1].add_row(*(escape(str(row[c])) for c in COLUMNS))
    return tables


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from rich.console import Console
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
    for rich_table in leaderboard_tables(table, shown):
        console.print(rich_table)
    console.print(f"{out_dir}/leaderboard.md (.csv .tex .html), figures/")
    for failure in result["failed"]:
        console.print(Text.assemble(("not scored", "yellow"), f": {failure['method']} in {failure['context']}: "
                                    f"{failure['reason']}"))


if __name__ == "__main__":
    main()
