"""Bad input to `evaluate.py`, through the real command line: exit status 2, a message that names the folder or file
and the fix, and no Python traceback."""

from __future__ import annotations

import json
import shutil

import pandas as pd


def check_refused(proc, *phrases: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    squeezed = " ".join(out.replace("│", " ").split())  # the message panel wraps lines
    for phrase in phrases:
        assert phrase in squeezed, squeezed[-3000:]


def test_empty_folder(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    check_refused(cli("evaluate.py", f"runs={empty}", "wandb.enabled=false"),
                  f"evaluate: no finished run with a checkpoint under {empty}", "no run.json found",
                  "Train first (python train.py ...) or point runs= at a folder of finished runs")


def test_foreign_folder(cli, tmp_path):
    foreign = tmp_path / "foreign"
    (foreign / "results").mkdir(parents=True)
    (foreign / "notes.txt").write_text("not a run\n")
    (foreign / "results" / "run.json").write_text(json.dumps({"accuracy": 0.9}))  # someone else's run.json
    check_refused(cli("evaluate.py", f"runs={foreign}", "wandb.enabled=false"),
                  f"no finished run with a checkpoint under {foreign}", "1 run folder(s) skipped",
                  f"{foreign / 'results'}: its run.json has no status, it was not written by train.py",
                  "point runs= at a folder of finished runs")


def test_folder_that_does_not_exist(cli, tmp_path):
    check_refused(cli("evaluate.py", f"runs={tmp_path / 'nowhere'}", "wandb.enabled=false"),
                  f"evaluate: {tmp_path / 'nowhere'} matches no folder", "runs='outputs/train/multirun/*'")


def test_truncated_checkpoint_in_a_copied_run_folder(cli, pipeline, tmp_path):
    # a run folder copied elsewhere is scored from its own checkpoints/, so the damage below must be seen
    copy = tmp_path / "copied" / "0"
    shutil.copytree(pipeline["sweep"] / "0", copy)
    best = copy / "checkpoints" / "best.ckpt"
    with open(best, "r+b") as f:
        f.truncate(best.stat().st_size // 3)
    # alone it is refused ...
    proc = cli("evaluate.py", f"runs={copy.parent}", "baselines=[]", "wandb.enabled=false",
               f"paths.data_dir={pipeline['data']}")
    check_refused(proc, "DataError", "nothing could be scored", f"checkpoint {best} cannot be read",
                  "corrupt, truncated")
    # ... and beside other methods it costs only itself: they are scored, it is listed with the reason
    board = tmp_path / "board"
    proc = cli("evaluate.py", f"runs={copy.parent}", "baselines=[persistence,delta]", "wandb.enabled=false",
               f"paths.data_dir={pipeline['data']}", f"hydra.run.dir={board}")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    assert "not scored: edcstfn in synthetic_small" in out and f"checkpoint {best} cannot be read" in out
    assert sorted(pd.read_csv(board / "leaderboard.csv")["model"]) == ["delta", "persistence"]
    assert f"Not scored: edcstfn ({copy})" in (board / "leaderboard.md").read_text()


def test_cuda_without_a_gpu(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for the subprocess, whatever this machine has
    (tmp_path / "empty").mkdir()
    check_refused(cli("evaluate.py", "device=cuda", f"runs={tmp_path / 'empty'}", "wandb.enabled=false"),
                  "ConfigError", "device=cuda but no CUDA GPU is visible on this machine", "use device=cpu",
                  "device=auto")


def test_device_checks(monkeypatch):
    import pytest
    import torch

    from stf_bench.errors import ConfigError
    from stf_bench.evaluation.checks import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_device("auto")
    check_device("cpu")
    with pytest.raises(ConfigError, match=r"device=cuda:1 but no CUDA GPU is visible.*device=cpu"):
        check_device("cuda:1")
    with pytest.raises(ConfigError, match=r"device='gpu0' is not a device: use device=auto .*cpu or cuda"):
        check_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_device("cuda:0")
    with pytest.raises(ConfigError, match=r"device=cuda:1 but this machine has 1 CUDA GPU\(s\): use device=cuda:0"):
        check_device("cuda:1")


def test_border_larger_than_half_the_scene(tmp_path):
    """A finished run whose store has 64 x 40 scenes: border 19 leaves 2 columns, border 20 none."""
    import pytest

    from stf_bench.errors import ConfigError
    from stf_bench.evaluation.checks import check_border
    from stf_bench.run_folder import discover_runs

    store = tmp_path / "data" / "synthetic_small" / "stf_lst-0123456789"
    store.mkdir(parents=True)
    (store / "manifest.json").write_text(json.dumps({"grid": {"height": 64, "width": 40}}))
    run = tmp_path / "runs" / "0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished", "store": str(store), "model": "delta",
                                              "lightning_module": "none"}))
    (run / "config_resolved.yaml").write_text("seed: 0\n")
    runs, _ = discover_runs([str(tmp_path / "runs")])
    check_border(19, runs)
    check_border(0, [])  # no border: nothing to check
    with pytest.raises(ConfigError, match=rf"border=20 drops 20 pixels on each edge, which leaves nothing of the "
                                          rf"64x40 test scenes of {store}\. Use border=19 at most"):
        check_border(20, runs)
    with pytest.raises(ConfigError, match=r"border='abc' is not a number of pixels"):
        check_border("abc", runs)
