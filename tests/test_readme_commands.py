"""Every command in README.md's code blocks is run here, in README order, in one fresh working folder, as a user would.

A command runs verbatim with placeholders (``/path/to/tifs``, ``<run>``, ``<time>``) replaced by real paths from the
commands before it, plus overrides that shrink data and epochs (so the published recipes finish in seconds); the
expected outcome of a command that needs what this machine lacks (a GPU, Earth Engine credentials, SLURM) is the
message that says so, or the composed launcher config. A README command without an entry here fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["dataset.source.height=64", "dataset.source.width=64", "dataset.source.n_dates=12"]
SHORT = ["model.train.patch_size=32", "model.train.max_epochs=1", "datamodule.patches_per_epoch=2", "model.train.batch_size=2",
         "pretrain_max_epochs=1", "logger=csv"]
ENCODER_32 = [f"model.net.feature_encoder.recipe.{k}={v}" for k, v in (("patch", 32), ("stride", 32),
                                                                       ("batch_size", 4))]
# the models' own patch sizes on 256 px scenes (SwinSTFM takes 256 only), one step of 2 (GAN-STFM's discriminator
# normalizes over the batch)
SWEEP_SMALL = ["dataset.source.height=256", "dataset.source.width=256", "dataset.source.n_dates=12",
               "model.train.patch_size='${fixed_or:${model.fixed_size},32}'", "model.train.batch_size=2",
               "model.train.max_epochs=1", "datamodule.patches_per_epoch=2", "pretrain_max_epochs=1", "logger=csv"]


@dataclass
class Expect:
    extra: tuple[str, ...] = ()
    returncode: int = 0
    phrases: tuple[str, ...] = ()
    why: str = ""  # why the command is not run as it is
    rewrite: tuple[tuple[str, str], ...] = ()  # (old, new) replacements, only where `why` says so


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    return [re.split(r"\s#\s", line)[0].strip() for line in lines if line.startswith(("python ", "make "))]


EXPECTED = {
    "make demo": Expect(why="run as `make demo` with DEMO_DATA and DEMO_TRAIN shrinking the data and the budget"),
    "make test": Expect(why="the test suite itself: CI runs it"),
    "python prepare.py": Expect(TINY),
    "python prepare.py dataset=synthetic": Expect(TINY),
    "python prepare.py dataset=folder dataset.source.root=/path/to/tifs": Expect(),
    "python prepare.py dataset=stf_lst dataset.source.root=/path/to/STF-LST/exports preprocess=stf_lst": Expect(),
    "python prepare.py dataset=yanco": Expect(),
    "python prepare.py dataset=stf_lst_gee dataset.source.project=MY_PROJECT": Expect(
        returncode=2, phrases=("earthengine authenticate",), why="no Earth Engine credentials here"),
    "python train.py model=ganstfm": Expect((*TINY, *SHORT, *ENCODER_32)),
    "python train.py model=edcstfn dataset=synthetic preprocess=reproject split=seasonal seed=1": Expect(
        ("dataset.source.height=64", "dataset.source.width=64", "dataset.source.n_dates=24", *SHORT,
         "pairing=previous", *ENCODER_32)),
    "python train.py model=swinstfm trainer=gpu": Expect(
        ("dataset.source.height=256", "dataset.source.width=256"), returncode=2, phrases=("trainer", "GPU"),
        why="no GPU here: refused before any work"),
    "python train.py model=ganstfm trainer=debug": Expect(("logger=csv",)),
    "python train.py model=swinstfm debug=fdr": Expect(("logger=csv",)),
    "python train.py --multirun model=edcstfn,ganstfm,swinstfm seed=1,2,3": Expect(tuple(SWEEP_SMALL)),
    "python train.py --multirun hydra/launcher=joblib model=edcstfn seed=1,2": Expect(
        (*TINY, *SHORT, *ENCODER_32, "pairing=previous")),
    "python train.py --multirun hydra/launcher=slurm hydra.launcher.partition=gpu model=edcstfn,ganstfm seed=1,2,3":
        Expect(("--cfg", "hydra"), phrases=("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                                            "partition: gpu", "max_num_timeout: 3"),
               why="no SLURM here: the first job's composed launcher config is checked",
               rewrite=(("--multirun ", ""), ("model=edcstfn,ganstfm", "model=edcstfn"), ("seed=1,2,3", "seed=1"))),
    "python train.py --multirun hparams_search=ganstfm_optuna": Expect(
        (*TINY, *SHORT, *ENCODER_32, "hydra.sweeper.n_trials=2")),
    # resumes the EDCSTFN run of the seasonal command above, so it repeats that run's data options
    "python train.py model=edcstfn ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt model.train.max_epochs=80":
        Expect(("dataset=synthetic", "split=seasonal", "seed=1", "dataset.source.height=64", "dataset.source.width=64",
                "dataset.source.n_dates=24", *SHORT, "pairing=previous", *ENCODER_32, "model.train.max_epochs=2")),
    "python evaluate.py": Expect(("wandb.enabled=false", "baselines=[persistence,delta]")),
    "python evaluate.py runs=outputs/demo/<time>/runs baselines=[persistence,coarse,delta,starfm,fitfc]": Expect(
        ("wandb.enabled=false",)),
    "python evaluate.py runs='[outputs/train/multirun/*/0,outputs/train/runs/*]' border=16": Expect(
        ("wandb.enabled=false", "baselines=[delta]")),
}


def test_every_readme_command_has_an_expectation():
    assert sorted(readme_commands()) == sorted(EXPECTED)


def run(command: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", NO_GCE_CHECK="true", COLUMNS="200", HOME=str(cwd / "home"),
               SQLALCHEMY_SILENCE_UBER_WARNING="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def placeholders(command: str, work: Path) -> str:
    """The README's placeholders, filled from what the commands before this one left in `work`."""
    raw = next((work / "data" / "synthetic_small").glob("raw-*"), None)
    if "<run>" in command:  # the EDCSTFN run before it
        ckpt = next(p for p in sorted((work / "outputs" / "train" / "runs").glob("*/checkpoints/last.ckpt"))
                    if json.loads((p.parent.parent / "run.json").read_text())["model"] == "edcstfn")
        command = command.replace("<run>", ckpt.parent.parent.name)
    if "<time>" in command:  # the demo's sweep: here the latest multirun folder stands for it
        sweep = sorted((work / "outputs" / "train" / "multirun").iterdir())[-1]
        command = command.replace("outputs/demo/<time>/runs", str(sweep))
    return (command.replace("/path/to/tifs", str(raw)).replace("/path/to/STF-LST/exports", str(raw))
            .replace("MY_PROJECT", "my-project"))


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path):
    (tmp_path / "home").mkdir()
    for command in readme_commands():
        expect = EXPECTED[command]
        if command.startswith("make"):
            continue  # make test is this suite; make demo: test_make_demo
        command_line = placeholders(command, tmp_path)
        for old, new in expect.rewrite:
            command_line = command_line.replace(old, new)
        script, *args = command_line.split(" ", 2)[1:]
        line = f"{sys.executable} {REPO / script} {' '.join(args)} {' '.join(map(shlex.quote, expect.extra))}"
        proc = run(line, tmp_path)
        out = " ".join((proc.stdout + proc.stderr).replace("│", " ").split())
        assert proc.returncode == expect.returncode, f"{command}\n{out[-4000:]}"
        assert "Traceback" not in out, f"{command}\n{out[-4000:]}"
        for phrase in expect.phrases:
            assert phrase in out, f"{command}: {phrase!r} not in\n{out[-4000:]}"
    boards = list((tmp_path / "outputs" / "evaluate" / "runs").glob("*/leaderboard.md"))
    assert len(boards) == 3


@pytest.mark.slow
def test_make_demo(tmp_path):
    proc = run(f"STF_BENCH_ROOT={tmp_path} make -C {REPO} demo PY={sys.executable} OUTPUTS={tmp_path / 'outputs'} "
               f"DEMO_DATA='dataset.source.n_dates=8' DEMO_TRAIN='trainer.max_time=00:00:00:05 pretrain_max_epochs=1'",
               tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (board,) = (tmp_path / "outputs" / "demo").glob("*/leaderboard/leaderboard.csv")
    import pandas as pd

    assert {"edcstfn", "ganstfm", "swinstfm", "starfm"} <= set(pd.read_csv(board)["model"])
