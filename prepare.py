"""Build a fusion dataset: python prepare.py [dataset=synthetic_small|synthetic|folder|stf_lst|yanco|gee]
[preprocess=stf_lst|reproject|nofill|temporal] [force=true]."""

import hydra
from omegaconf import DictConfig

from stf_bench.errors import exit_on_user_error
from stf_bench.resolvers import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="prepare")
@exit_on_user_error
def main(cfg: DictConfig) -> str:
    from rich.console import Console

    from stf_bench.data.report import summary_table
    from stf_bench.data.store import build_dataset

    store, cache_hit = build_dataset(cfg.dataset, cfg.preprocess, cfg.paths.data_dir, force=cfg.force)
    Console().print(summary_table(store.manifest, store.path, cache_hit))
    return str(store.path)


if __name__ == "__main__":
    main()
