"""Sweeps through the real `train.py --multirun`: an Optuna study that a re-run resumes, the submitit launcher run
locally, and the SLURM launcher's documented fields. (The joblib launcher trains the end-to-end test's runs.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml


def sweep_runs(outputs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(outputs.glob("train/multirun/*/*/run.json"))]


@pytest.mark.slow
def test_optuna_study_in_sqlite_resumes(cli, tiny, data_dir, tmp_path):
    import optuna

    outputs = tmp_path / "outputs"
    # batch sizes up to 8 (the search space) need 8 patches per epoch
    args = ["hparams_search=edcstfn_optuna", "hydra.sweeper.n_trials=2", *tiny("edcstfn"),
            "datamodule.patches_per_epoch=8", "logger=csv", f"paths.data_dir={data_dir}"]
    db = outputs / "optuna" / "edcstfn_optuna.db"  # the study's folder does not exist before the first sweep

    first = cli("train.py", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert db.is_file()
    study = optuna.load_study(study_name="edcstfn_optuna", storage=f"sqlite:///{db}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # the objective is the run's best validation RMSE in K
    runs = sweep_runs(outputs)
    assert [r["status"] for r in runs] == ["finished"] * 2
    assert sorted(t.value for t in study.trials) == pytest.approx(sorted(r["best_val_rmse"] for r in runs))
    results = yaml.safe_load(next(outputs.glob("train/multirun/*/optimization_results.yaml")).read_text())
    assert results["best_value"] == pytest.approx(min(t.value for t in study.trials))

    # each trial's number, params, value, run folder and best checkpoint, in the results and in its run.json
    assert [t["number"] for t in results["trials"]] == [0, 1]
    for row, trial in zip(results["trials"], study.trials):
        assert (row["params"], row["value"]) == (trial.params, pytest.approx(trial.value))
        run = json.loads((Path(row["run"]) / "run.json").read_text())
        assert run["trial"]["number"] == trial.number and run["checkpoints"]["best"] == row["checkpoint"]
        assert Path(row["checkpoint"]).is_file()
    best = min(results["trials"], key=lambda r: r["value"])
    assert results["best_run"] == best["run"]
    assert f"python evaluate.py runs={best['run']}" in first.stderr + first.stdout

    second = cli("train.py", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    study = optuna.load_study(study_name="edcstfn_optuna", storage=f"sqlite:///{db}")
    assert [t.number for t in study.trials] == [0, 1, 2, 3] and len(sweep_runs(outputs)) == 4
    # the resumed study draws new trials (a fixed sampler seed replayed trials 0 and 1 as 2 and 3)
    old, new = [t.params["model.optimizer.lr"] for t in study.trials[:2]], \
        [t.params["model.optimizer.lr"] for t in study.trials[2:]]
    assert not set(old) & set(new)
    # sweep folders are named by their start time, so sorted order is run order (glob order is the file system's)
    first_sweep, second_sweep = sorted(outputs.glob("train/multirun/*/optimization_results.yaml"))
    assert [t["number"] for t in yaml.safe_load(first_sweep.read_text())["trials"]] == [0, 1]
    assert [t["number"] for t in yaml.safe_load(second_sweep.read_text())["trials"]] == [2, 3]


def test_submitit_local_launcher_runs_one_job(cli, tiny, data_dir, tmp_path):
    proc = cli("train.py", "--multirun", "hydra/launcher=submitit_local", *tiny("delta"), f"paths.data_dir={data_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multirun").iterdir()
    (run,) = sweep_runs(tmp_path / "outputs")
    assert run["status"] == "finished" and run["model"] == "delta"
    # the job ran in submitit's own process, which left its logs and result beside the run
    assert list(sweep.glob(".submitit/*/*_0_result.pkl")) and list(sweep.glob(".submitit/*/*_0_log.err"))


def test_slurm_launcher_fields():
    from hydra import compose, initialize_config_dir

    from stf_bench.resolvers import register

    register()
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                          "hydra.launcher.gpus_per_node=4", "hydra.launcher.timeout_min=60"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 4, 60)
    assert (launcher.tasks_per_node, launcher.array_parallelism) == (1, 16)
