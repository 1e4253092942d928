"""How a training job ends besides "finished": Ctrl-C, SIGTERM and submitit's preemption signal on a real `train.py`,
a requeued job that resumes, interrupted loss-network pre-training, zero-step runs, changed splits on resume,
skipped dates, and the job table of a sweep with failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from stf_bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", NO_GCE_CHECK="true", COLUMNS="200")
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before the condition:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out:\n{proc.stdout.read()[-3000:]}")


def the_run(tmp_path: Path) -> Path | None:
    runs = list((tmp_path / "outputs").rglob("run.json"))
    return runs[0].parent if runs else None


@pytest.mark.parametrize("signum, status, stage", [(signal.SIGINT, "interrupted", "training"),
                                                   (signal.SIGTERM, "preempted", "training"),
                                                   (signal.SIGINT, "interrupted", "loss-network pre-training")])
def test_signal_stops_the_run_with_one_line_and_a_status(tiny, data_dir, tmp_path, signum, status, stage):
    pretraining = stage.startswith("loss")
    args = [*tiny("edcstfn"), "logger=csv", f"paths.data_dir={data_dir}", "model.train.max_epochs=500",
            f"pretrain_max_epochs={1000 if pretraining else 1}"]
    proc = spawn(tmp_path, *args)
    if pretraining:  # the first epoch's progress of this (uncached) pre-training is on disk
        progress = wait_for(lambda: list(data_dir.rglob("pretrained/edcstfn_*.progress")), proc)[0]
    else:  # two epochs trained
        wait_for(lambda: (r := the_run(tmp_path)) and (r / "checkpoints" / "last.ckpt").is_file()
                 and torch.load(r / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] >= 2, proc)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    run = the_run(tmp_path)
    info = json.loads((run / "run.json").read_text())

    assert proc.returncode == 128 + signum, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    name = signal.Signals(signum).name
    ended = [line for line in out.splitlines() if f"run {status} by {name}" in line]
    assert len(ended) == 1, out[-3000:]
    assert info["status"] == status and info["reason"].startswith(f"{name} (") and stage in info["reason"]
    if pretraining:
        assert "no training checkpoint yet" in ended[0] and "checkpoints" not in info
        saved = torch.load(progress, weights_only=True)
        assert saved["epoch"] >= 1  # the next run continues from here
    else:
        last = run / "checkpoints" / "last.ckpt"
        assert info["checkpoints"]["last"] == str(last) and f"ckpt_path={last}" in ended[0]
        assert "model=edcstfn" in ended[0]  # the resume command repeats the run's overrides
        ckpt = torch.load(last, weights_only=False)
        assert ckpt["global_step"] >= 2 and ckpt["hyper_parameters"]["model_cfg"]["id"] == "edcstfn"


def test_interrupted_pretraining_resumes_from_its_epoch(tmp_path):
    from stf_bench.models.blocks.pretrained import PretrainedPiece, train_piece

    class AE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 1, 3, padding=1)

        def forward(self, x):
            return self.decoder(torch.relu(self.encoder(x)))

    calls = []

    def loss(recon, x, stop_at=None):
        calls.append(1)
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt  # what a signal does in the middle of an epoch
        return torch.nn.functional.mse_loss(recon, x)

    recipe = dict(patch=16, stride=16, batch_size=4, max_epochs=4, lr=1e-2, weight_decay=0.0, plateau_factor=0.5,
                  plateau_patience=0, val_fraction=0.25)
    images = [np.random.default_rng(i).random((32, 32), dtype=np.float32) for i in range(3)]
    # 12 patches: 9 train (3 batches) + 3 validation (1 batch) = 4 loss calls per epoch
    whole = train_piece(PretrainedPiece("ae", AE, loss, recipe), images, seed=1, progress=False)
    assert len(calls) == 16

    calls.clear()
    progress = tmp_path / "ae.progress"
    stopping = PretrainedPiece("ae", AE, lambda r, x: loss(r, x, stop_at=10), recipe)  # in the third epoch
    with pytest.raises(KeyboardInterrupt):
        train_piece(stopping, images, seed=1, progress=False, resume_path=progress)
    assert torch.load(progress, weights_only=True)["epoch"] == 2

    calls.clear()
    resumed = train_piece(PretrainedPiece("ae", AE, loss, recipe), images, seed=1, progress=False,
                          resume_path=progress)
    assert len(calls) == 8  # epochs 3 and 4 only
    assert not progress.exists()
    assert resumed.keys() == whole.keys()
    for key in whole:  # the same weights as the uninterrupted run
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0)


@pytest.mark.slow
def test_submitit_job_preempted_requeues_and_resumes(tiny, data_dir, tmp_path):
    max_epochs = 12
    proc = spawn(tmp_path, "--multirun", "hydra/launcher=submitit_local", *tiny("edcstfn"), "logger=csv",
                 f"paths.data_dir={data_dir}", f"model.train.max_epochs={max_epochs}")
    run = wait_for(lambda: (r := the_run(tmp_path)) and (r / "checkpoints" / "last.ckpt").is_file() and r, proc)
    first = json.loads((run / "run.json").read_text())
    os.kill(first["pid"], signal.SIGUSR2)  # what submitit's SLURM jobs get before a time limit or on preemption
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]

    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["requeued"] == 1, info
    last = run / "checkpoints" / "last.ckpt"
    assert info["resumed_from"] == str(last) and info["pid"] != first["pid"]
    assert info["epochs"] == max_epochs and torch.load(last, weights_only=False)["global_step"] == max_epochs
    (log_out,) = run.parent.glob(".submitit/*/*_0_log.out")
    logs = log_out.read_text()
    assert "run preempted by SIGUSR2" in logs and "Requeued job" in logs and "resuming from" in logs
    assert logs.count("Loading pickle") == 2  # the job started twice


@pytest.mark.slow
def test_sweep_with_failing_jobs_leaves_every_run_json_and_a_table(cli, tiny, data_dir, tmp_path):
    # a 1-day gap pairs no date: those two jobs fail in datamodule.setup, before any training
    proc = cli("train.py", "--multirun", *tiny("edcstfn"), "logger=csv", f"paths.data_dir={data_dir}",
               "pairing.max_gap_days=null,1", "seed=0,1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    runs = sorted((tmp_path / "outputs").glob("train/multirun/*/*/run.json"), key=lambda p: int(p.parent.name))
    infos = [json.loads(p.read_text()) for p in runs]
    assert [i["status"] for i in infos] == ["finished", "finished", "failed", "failed"], out[-3000:]
    for info in infos[2:]:
        assert info["error"].startswith("ConfigError: no train sample can be paired") and info["model"] == "edcstfn"
    table = proc.stdout[proc.stdout.index("sweep "):]  # Hydra itself reports only the first failure (stderr)
    assert "4 jobs (2 finished, 2 failed)" in table
    for n, info in enumerate(infos):
        row = next(line for line in table.splitlines() if line.startswith(f"{n} "))
        assert info["status"] in row and str(runs[n].parent) in row
    assert table.count("ConfigError: no train sample") == 2


def test_random_split_trains_and_lists_skipped_test_dates(tiny, train_run, caplog):
    # seed 2 puts the series' first date in the test split: no pairing has a reference before it
    _, run = train_run(*tiny("edcstfn"), "split=random", "split.seed=2")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    # EDCSTFN pairs two references by default (pairing=two_refs)
    assert info["skipped_dates"]["test"] == ["2013-08-07: no reference date on each side (pairing.mode=two_refs)"]
    assert info["skipped_dates"]["train"] == [
        f"{d}: no reference date on each side (pairing.mode=two_refs)" for d in ("2014-02-15", "2024-07-20")]
    assert info["split_config"] == {"class": "RandomSplit", "name": "random", "val_fraction": 0.15,
                                    "test_fraction": 0.15, "seed": 2}
    assert "split=random pairing=two_refs: test date 2013-08-07 is skipped: no reference date on each" in caplog.text


def test_seasonal_split_trains(tiny, train_run):
    _, run = train_run(*tiny("edcstfn"), "split=seasonal")  # the README's example split
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["split"] == "seasonal"
    # JJA dates 0, 5, 11: the first and last date have no reference on each side
    assert [d.split(":")[0] for d in info["skipped_dates"]["test"]] == ["2013-08-07", "2024-07-20"]


@pytest.mark.parametrize("change, phrase", [(["split=random"], "trained with split {'class': 'ChronologicalSplit'"),
                                            (["split.test_fraction=0.3"], "this run uses split"),
                                            (["pairing.max_gap_days=4000"], "trained with pairing {'name': 'two_refs'")])
def test_resume_with_another_split_or_pairing_is_refused(tiny, train_run, edcstfn_run, change, phrase):
    with pytest.raises(ConfigError, match="resuming would move dates between training and test") as err:
        train_run(*tiny("edcstfn"), *change, f"ckpt_path={edcstfn_run / 'checkpoints' / 'last.ckpt'}")
    assert phrase in str(err.value)


def test_fewer_patches_than_a_batch_is_refused_before_training(tiny, train_run, tmp_path):
    with pytest.raises(ConfigError, match=r"datamodule.patches_per_epoch=1 is smaller than model.train.batch_size=2"):
        train_run(*tiny("edcstfn"), "datamodule.patches_per_epoch=1", name="few")
    info = json.loads((tmp_path / "few" / "run.json").read_text())
    assert info["status"] == "failed" and "zero optimizer steps" in info["error"]
    assert not (tmp_path / "few" / "checkpoints").exists()


def test_zero_optimizer_steps_fail_instead_of_testing_an_untrained_network(tiny, train_run, tmp_path):
    with pytest.raises(ConfigError, match="training made zero optimizer steps"):
        train_run(*tiny("edcstfn"), "+trainer.limit_train_batches=0", name="none")
    info = json.loads((tmp_path / "none" / "run.json").read_text())
    assert info["status"] == "failed" and "test" not in info


def test_setup_failure_still_writes_run_json(tiny, train_run, tmp_path):
    with pytest.raises(Exception, match="sideways"):  # a ConfigError, raised while instantiating the datamodule
        train_run(*tiny("edcstfn"), "pairing.mode=sideways", name="bad")
    info = json.loads((tmp_path / "bad" / "run.json").read_text())
    assert info["status"] == "failed" and info["model"] == "edcstfn" and info["seed"] == 2019  # model.train.seed
    assert info["error"].startswith("ConfigError: pairing.mode='sideways': use one of previous")


def test_peak_memory_is_per_job_not_per_process(tiny, train_run):
    from stf_bench.training.lifecycle import _status_kb

    if _status_kb("VmRSS") / 1024 > 2000:  # late in a full run the model tests have left GBs resident; see the note
        pytest.skip("process already holds > 2 GB: run tests/training/test_lifecycle.py alone for this measurement")

    _, first = train_run(*tiny("edcstfn"), name="first")
    big = np.ones(800 * 2**20 // 8)  # an earlier job in the same process that peaked 800 MB higher
    peak_then = _status_kb("VmHWM") / 1024
    del big
    _, second = train_run(*tiny("edcstfn"), name="second")
    one, two = (json.loads((r / "run.json").read_text()) for r in (first, second))
    assert two["peak_memory_kind"] == "CPU job peak RSS"
    assert two["peak_memory_mb"] < peak_then - 500  # the process's lifetime peak would include the 800 MB
    assert abs(two["peak_memory_mb"] - one["peak_memory_mb"]) < 300
