"""experiment=ddp_smoke: two CPU processes (gloo) train, validate, checkpoint and test one model as one run; rank 0
alone writes run.json; the run resumes from its own checkpoint. The real entry point, as DDP relaunches it."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.mark.slow
def test_two_process_ddp_run_then_resume(cli, data_dir, tmp_path):
    out = tmp_path / "out"
    common = [f"paths.data_dir={data_dir}", f"paths.outputs_dir={out}", "logger=csv"]
    first = cli("train.py", "experiment=ddp_smoke", *common, "hydra.run.dir=" + str(out / "ddp"), timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    log = first.stdout + first.stderr
    assert log.count("epoch 2/2") == 1   # the progress line, from rank 0 only
    run = out / "ddp"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["world_size"] == 2 and info["strategy"] == "DDPStrategy"
    assert info["epochs"] == 2 and info["test"]["test/rmse"] is not None
    # one run folder, one resolved config, one metrics log: the second rank wrote none of its own
    assert sorted(p.name for p in out.iterdir()) == ["ddp"]
    assert len(list(run.rglob("run.json"))) == 1 and len(list(run.rglob("metrics.csv"))) == 1
    last = run / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and state["global_step"] == 4   # 2 epochs x 2 batches per rank

    resumed = cli("train.py", "experiment=ddp_smoke", *common, "hydra.run.dir=" + str(out / "resumed"),
                  f"ckpt_path={last}", "trainer.max_epochs=3", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = json.loads((out / "resumed" / "run.json").read_text())
    assert info["status"] == "finished" and info["resumed_from"] == str(last) and info["epochs"] == 3
    assert torch.load(out / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)["global_step"] == 6
