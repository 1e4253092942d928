"""OmegaConf resolvers the configs use; entry points register them before Hydra composes anything."""

import os

from omegaconf import OmegaConf


def register() -> None:
    # ${cwd:}: the directory the command runs in (Hydra's own is unset while a sweep's folder is being named)
    OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
    # ${fixed_or:${model.fixed_size},64}: a model's only accepted patch size, else the given default
    OmegaConf.register_new_resolver("fixed_or", lambda fixed, default: fixed if fixed else default, replace=True)
