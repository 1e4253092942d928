"""Resuming a run from its last checkpoint, and a diverging run that stops with a clear message."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch


def test_resume_continues_to_higher_max_epochs(tiny, train_run, edcstfn_run):
    overrides = tiny("edcstfn")  # one epoch of one step (2 patches, batch 2)
    first = edcstfn_run
    info = json.loads((first / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs"] == 1
    last = first / "checkpoints" / "last.ckpt"
    assert info["checkpoints"] == {"best": str(first / "checkpoints" / "best.ckpt"), "last": str(last)}
    assert torch.load(last, weights_only=False)["global_step"] == 1

    objective, resumed = train_run(*overrides, "model.train.max_epochs=3", f"ckpt_path={last}", name="resumed")
    info = json.loads((resumed / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs"] == 3
    assert objective == info["best_val_rmse"] and 0.0 < objective < 60.0
    # the optimizer steps continue from the checkpoint's count: 2 more epochs, not 3 from scratch
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    logged = pd.read_csv(resumed / "csv" / "metrics.csv")
    assert logged.dropna(subset=["train/loss"])["epoch"].tolist() == [1, 2]
    assert last.is_file()  # the resumed run writes only in its own folder


def test_nan_loss_stops_the_run_with_the_fix(tiny, train_run, tmp_path):
    # Adam moves every weight by about lr per step: 1e30 makes the second step's loss inf/NaN
    overrides = [*tiny("edcstfn"), "model.optimizer.lr=1e30", "datamodule.patches_per_epoch=8"]
    with pytest.raises(FloatingPointError, match=r"training loss became (nan|inf).*model\.optimizer\.lr"):
        train_run(*overrides, name="diverged")
    info = json.loads((tmp_path / "diverged" / "run.json").read_text())
    assert info["status"] == "failed"
    assert info["error"].startswith("TrainingDiverged: the training loss became")


def test_nan_loss_is_a_message_not_a_traceback(tiny, cli, data_dir):
    proc = cli("train.py", *tiny("edcstfn"), "model.optimizer.lr=1e30", "datamodule.patches_per_epoch=8", "logger=csv",
               f"paths.data_dir={data_dir}")
    out = " ".join((proc.stdout + proc.stderr).replace("│", " ").split())
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "TrainingDiverged" in out and "Lower the learning rate (model.optimizer.lr)" in out


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\(\)`")
def test_validation_ssim_skips_scenes_too_sparse_for_ssim():
    """A cloudy validation scene has SSIM NaN (metrics.md); val/ssim (swinstfm's LR monitor) averages the others."""
    import numpy as np
    from omegaconf import OmegaConf

    from stf_bench.training.classical import ClassicalModule

    model_cfg = OmegaConf.to_container(OmegaConf.load("conf/model/persistence.yaml"))
    model_cfg["net"]["coarse_block"] = 2
    module = ClassicalModule(model_cfg=model_cfg, norm={"offset": 0.0, "scale": 1.0}, data_range_k=60.0,
                             dataset_id={})
    module._scores = [{"rmse": 1.0, "ssim": 0.8, "bias": 0.5, "n_pixels": 100},
                      {"rmse": 3.0, "ssim": float("nan"), "bias": -0.5, "n_pixels": 3}]
    values = module._log_scores("val")
    assert values == {"rmse": 2.0, "ssim": 0.8, "bias": 0.0}
    module._scores = [{"rmse": 1.0, "ssim": float("nan"), "bias": 0.0, "n_pixels": 3}]
    assert np.isnan(module._log_scores("val")["ssim"])
