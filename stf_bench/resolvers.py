"""OmegaConf resolvers the configs use; entry points register them before Hydra composes anything."""

import os
from pathlib import Path

from omegaconf import OmegaConf

CODE_DIR = str(Path(__file__).resolve().parents[1])


def ensure_dir(path: str) -> str:
    """The folder `path`, created when missing: sqlite cannot create the folder of a new database file."""
    os.makedirs(path, exist_ok=True)
    return path


def sweep_group(experiment: str) -> str:
    """The W&B group of a job: its experiment, and in a --multirun also its sweep (one group per sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{experiment}/{Path(HydraConfig.get().sweep.dir).name}"
    return experiment


def deep_models() -> str:
    """Every deep model id in conf/model/, comma-separated for a sweep: a new zoo model joins without editing a list."""
    from stf_bench.models.param_table import CONF_MODEL

    return ",".join(p.stem for p in sorted(CONF_MODEL.glob("*.yaml"))
                    if OmegaConf.load(p).get("lightning_module") != "none")


def _study_seed(seed, storage: str, study_name: str):
    from stf_bench.training.sweeps import study_seed

    return study_seed(seed, storage, study_name)


def register() -> None:
    # ${cwd:}: the directory the command runs in (Hydra's own is unset while a sweep's folder is being named)
    OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
    # ${code_dir:}: the checkout stf_bench runs from (../shared beside it holds the Yanco sample), wherever the command
    # runs
    OmegaConf.register_new_resolver("code_dir", lambda: CODE_DIR, replace=True)
    # ${sweep_group:${experiment_name}}: <experiment>/<sweep folder> in a --multirun, else <experiment>
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    # ${fixed_or:${model.fixed_size},64}: a model's only accepted patch size, else the given default
    OmegaConf.register_new_resolver("fixed_or", lambda fixed, default: fixed if fixed else default, replace=True)
    # sqlite:///${ensure_dir:${paths.outputs_dir}/optuna}/study.db: a study database on a fresh checkout
    OmegaConf.register_new_resolver("ensure_dir", ensure_dir, replace=True)
    # ${study_seed:1234,<storage>,<study>}: the seed plus the trials already in the study (a resumed study draws anew)
    OmegaConf.register_new_resolver("study_seed", _study_seed, replace=True)
    # ${deep_models:}: every deep model of conf/model/ as a sweep list (experiment=zoo_smoke)
    OmegaConf.register_new_resolver("deep_models", deep_models, replace=True)
    # ${default_pairing:${model.n_refs}}: the pairing a model gets unless the command names one
    OmegaConf.register_new_resolver("default_pairing", lambda n_refs: "two_refs" if int(n_refs) >= 2 else "previous",
                                    replace=True)
