"""Fixtures of the training tests: tiny synthetic overrides per model, `train()` in-process through Hydra's compose
API, and the real entry points in subprocesses where the launcher, the sweeper or the exit status matter.

Everything is written under pytest's session temp folder; dataset stores and pre-trained loss networks are cached in
one `data` folder there, so each tiny dataset is built (and each loss network trained) once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]


def tiny_overrides(model_id: str) -> list[str]:
    """Overrides that make `model=<id>` train one short epoch on a tiny synthetic dataset.

    64 x 64 scenes with 12 dates (chronological split: 8 train, 2 val, 2 test dates, so two_refs still pairs a test
    date), 2 patches of 32 px per epoch; a model with a fixed input size gets scenes and patches of that size; a frozen
    loss network is pre-trained for one epoch on 32 px patches (its published 256 px recipe exceeds the scenes).
    """
    model = OmegaConf.load(REPO / "conf" / "model" / f"{model_id}.yaml")
    side, patch = (model.fixed_size, model.fixed_size) if model.fixed_size else (64, 32)
    out = [f"model={model_id}", f"dataset.source.height={side}", f"dataset.source.width={side}",
           "dataset.source.n_dates=12"]
    if model.lightning_module != "none":
        out += [f"model.train.patch_size={patch}", f"model.train.batch_size={1 if patch > 64 else 2}",
                "model.train.max_epochs=1", "datamodule.patches_per_epoch=2", "pretrain_max_epochs=1"]
    if "feature_encoder" in model.net:
        out += [f"model.net.feature_encoder.recipe.{k}={v}" for k, v in (("patch", 32), ("stride", 32),
                                                                           ("batch_size", 4))]
    return out


@pytest.fixture(scope="session")
def tiny():
    return tiny_overrides


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "data"


def compose_train(overrides: list[str], data_dir: Path, run_dir: Path):
    """The `train.py` config for these overrides, with Hydra's runtime set as `@hydra.main` sets it for one run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from stf_bench.resolvers import register

    register()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["logger=csv", *overrides, f"paths.data_dir={data_dir}",
                                          f"paths.outputs_dir={run_dir.parent}"], return_hydra_config=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)
        del cfg["hydra"]  # the task function never sees this node
    return cfg


def train_in_process(overrides: list[str], data_dir: Path, run_dir: Path) -> float:
    from stf_bench.training.pipeline import train

    return train(compose_train(overrides, data_dir, run_dir))


@pytest.fixture
def train_run(data_dir, tmp_path):
    """`train(cfg)` in this process: returns (objective, run folder); raises what train() raises."""

    def run(*overrides: str, name: str = "run") -> tuple[float, Path]:
        return train_in_process(list(overrides), data_dir, tmp_path / name), tmp_path / name

    return run


@pytest.fixture(scope="session")
def edcstfn_run(data_dir, tmp_path_factory) -> Path:
    """A finished one-epoch EDCSTFN run on the tiny dataset (best.ckpt and last.ckpt), shared by the session."""
    run_dir = tmp_path_factory.mktemp("edcstfn") / "run"
    train_in_process(tiny_overrides("edcstfn"), data_dir, run_dir)
    return run_dir


@pytest.fixture
def cli(tmp_path):
    """`python <script> ...` run from `tmp_path` as a user runs it; W&B offline unless `env` unsets it (None)."""

    def run(script: str, *overrides: str, env: dict | None = None, timeout: int = 600):
        full = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        full.update(WANDB_MODE="offline", NO_GCE_CHECK="true", COLUMNS="200")
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        return subprocess.run([sys.executable, str(REPO / script), *overrides], cwd=tmp_path, env=full,
                              capture_output=True, text=True, timeout=timeout)

    return run
