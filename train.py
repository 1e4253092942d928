"""Train one surveyed architecture (or sweep many): python train.py model=ganstfm [--multirun ...]."""

import hydra
from omegaconf import DictConfig

from stf_bench.errors import exit_on_user_error
from stf_bench.resolvers import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    from stf_bench.training.pipeline import train

    return train(cfg)


if __name__ == "__main__":
    main()
