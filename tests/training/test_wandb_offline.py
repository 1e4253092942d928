"""W&B: with no key anywhere the run logs offline into its own folder, says so once, and never
touches the network (a local listener stands in for the W&B server and must see no connection); one finished run
per training job, read back from the offline run files."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from wandb_records import read_offline_run


class Listener:
    """A TCP server on a free local port that counts the connections made to it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port, self.connections, self._stop = self.server.getsockname()[1], 0, threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


def test_wandb_without_key_logs_offline_in_the_run_folder(cli, tiny, data_dir, tmp_path):
    home = tmp_path / "home"  # no ~/.netrc, no wandb settings
    home.mkdir()
    listener = Listener()
    try:
        # the cli fixture removes every WANDB_* variable; WANDB_MODE stays unset, as on a fresh machine
        proc = cli("train.py", *tiny("edcstfn"), "logger=[csv,wandb]", f"paths.data_dir={data_dir}",
                   env={"WANDB_MODE": None, "HOME": str(home), "WANDB_BASE_URL": f"http://127.0.0.1:{listener.port}"},
                   timeout=300)
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert listener.connections == 0

    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    # tagged with the seed, and the end-of-training prediction image is logged
    assert b"seed2019" in next(offline.glob("run-*.wandb")).read_bytes()
    assert list(offline.glob("files/media/images/test/prediction_*.png"))
    log = (run_dir / "train.log").read_text()
    assert log.count("W&B: no API key configured, logging offline") == 1


def offline_run(run_dir):
    """(id, name, group, exit code, val/rmse summary, val/rmse history) of the one W&B run in a run folder."""
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    run = read_offline_run(offline)
    history = [row["val/rmse"] for row in run["history"] if "val/rmse" in row]
    return run["run_id"], run["name"], run["group"], run["exit_code"], run["summary"].get("val/rmse"), history


@pytest.mark.slow  # four jobs
def test_local_multirun_gives_one_finished_run_per_job(cli, tiny, data_dir, tmp_path):
    proc = cli("train.py", "--multirun", *tiny("edcstfn"), "seed=1,2,3,4", "model.train.max_epochs=2",
               "plan.probe_steps=0", "logger=[csv,wandb]", f"paths.data_dir={data_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((tmp_path / "outputs" / "train" / "multirun").glob("*/[0-9]"))
    runs = [offline_run(job) for job in jobs]
    assert len({r[0] for r in runs}) == 4
    assert [r[1] for r in runs] == [f"edcstfn-synthetic_small-chronological-s{s}" for s in (1, 2, 3, 4)]
    assert {r[2] for r in runs} == {f"train/{jobs[0].parent.name}"}  # experiment_name/sweep
    for job, (run_id, _, _, exit_code, summary, history) in zip(jobs, runs):
        assert exit_code == 0 and len(history) == 2
        assert summary == {"min": min(history)}
        assert json.loads((job / "run.json").read_text())["wandb_run_id"] == run_id


def test_failed_job_marks_its_run_failed(tiny, train_run, tmp_path):
    with pytest.raises(FloatingPointError):  # Adam with lr 1e30: the second step's loss is not finite
        train_run(*tiny("edcstfn"), "model.optimizer.lr=1e30", "datamodule.patches_per_epoch=8", "plan.probe_steps=0",
                  "logger=[csv,wandb]", name="failing")
    run_id, name, _, exit_code, _, _ = offline_run(tmp_path / "failing")
    assert exit_code == 1 and name == "edcstfn-synthetic_small-chronological-s2019"
    info = json.loads((tmp_path / "failing" / "run.json").read_text())
    assert info["status"] == "failed" and info["wandb_run_id"] == run_id
