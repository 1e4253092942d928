"""Fixtures of the evaluation tests: the real entry points in subprocesses, and one tiny prepare -> train -> evaluate
pipeline shared by the session (its runs also serve the bad-input tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# 64 x 64 scenes, 12 dates: the chronological split tests the last 2 dates, each paired with the date before it
TINY = ["dataset.source.height=64", "dataset.source.width=64", "dataset.source.n_dates=12"]
# EDCSTFN with one reference (its min_refs), one epoch of one step, its loss network pre-trained on 32 px patches
EDCSTFN_SHORT = ["model=edcstfn", "pairing=previous", "model.train.patch_size=32", "model.train.batch_size=2",
                 "model.train.max_epochs=1", "datamodule.patches_per_epoch=2", "pretrain_max_epochs=1",
                 "model.net.feature_encoder.recipe.patch=32", "model.net.feature_encoder.recipe.stride=32",
                 "model.net.feature_encoder.recipe.batch_size=4", "logger=csv"]


def run_cli(script: str, *overrides: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python <script> ...` as a user runs it from `cwd`, W&B offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", NO_GCE_CHECK="true", COLUMNS="200")
    return subprocess.run([sys.executable, str(REPO / script), *overrides], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli(tmp_path):
    return lambda script, *overrides: run_cli(script, *overrides, cwd=tmp_path)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "data"


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, data_dir) -> dict:
    """prepare.py, then two seeds of EDCSTFN as a 2-job joblib sweep, then evaluate.py with the trivial baselines."""
    root = tmp_path_factory.mktemp("pipeline")
    sweep, board = root / "sweep", root / "leaderboard"
    steps = [
        ("prepare.py", *TINY, f"paths.data_dir={data_dir}"),
        ("train.py", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2", *TINY,
         *EDCSTFN_SHORT, f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}"),
        ("evaluate.py", f"runs={sweep}", "baselines=[persistence,coarse,delta]", f"paths.data_dir={data_dir}",
         f"hydra.run.dir={board}"),
    ]
    for script, *overrides in steps:
        proc = run_cli(script, *overrides, cwd=root)
        assert proc.returncode == 0, f"{script}: {proc.stderr[-3000:]}"
    return {"root": root, "sweep": sweep, "leaderboard": board, "data": data_dir, "tiny": TINY}


@pytest.fixture(scope="session")
def classical(tmp_path_factory) -> dict:
    """Test-only persistence runs: two random-split seeds, and a second 'site' under the same dataset name."""
    root = tmp_path_factory.mktemp("contexts")
    data = root / "data"
    jobs = {"seed10": ["split=random", "split.seed=10"], "seed11": ["split=random", "split.seed=11"],
            "site2": ["dataset.source.seed=1"]}
    runs = {}
    for name, extra in jobs.items():
        folder = root / "runs" / name
        proc = run_cli("train.py", "model=persistence", *TINY, *extra, "logger=csv", f"paths.data_dir={data}",
                       f"hydra.run.dir={folder}", cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = folder
    return {"root": root, "data": data, "runs": runs}
