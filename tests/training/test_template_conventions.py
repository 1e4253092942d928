"""lightning-hydra-template conventions: the debug/ group, callbacks=none, git-ignored conf/local/, the config tree
printed at start, and the sweep objective `optimized_metric` with its direction."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from stf_bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def compose(overrides: list[str], conf: Path = REPO / "conf"):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from stf_bench.resolvers import register

    register()
    with initialize_config_dir(str(conf), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


@pytest.mark.parametrize("name, expected", [
    ("default", {"max_epochs": 1, "accelerator": "cpu", "detect_anomaly": True}),
    ("fdr", {"fast_dev_run": True, "max_epochs": 1}),
    ("overfit", {"overfit_batches": 1, "max_epochs": 20}),
    ("limit", {"limit_train_batches": 4, "limit_val_batches": 2, "max_epochs": 3}),
])
def test_debug_group_sets_the_trainer(name, expected):
    cfg = compose(["model=edcstfn", f"debug={name}"])
    assert {k: cfg.trainer[k] for k in expected} == expected
    assert cfg.task_name == "debug" and cfg.datamodule.batch_size == 2 and cfg.pretrain_max_epochs == 1


def test_debug_profiler_is_instantiable(tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["model=edcstfn", "debug=profiler", f"paths.output_dir={tmp_path}"])
    profiler = instantiate(cfg.trainer.profiler)
    assert type(profiler).__name__ == "SimpleProfiler" and Path(profiler.dirpath) == tmp_path


def test_callbacks_none_composes_empty_and_disables_checkpointing():
    cfg = compose(["model=edcstfn", "callbacks=none"])
    assert dict(cfg.callbacks) == {} and cfg.trainer.enable_checkpointing is False
    assert len(compose(["model=edcstfn"]).callbacks) == 5  # the default keeps its five


def test_local_overrides_are_optional_and_applied(tmp_path):
    assert "/conf/local/" in (REPO / ".gitignore").read_text().splitlines()
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf, ignore=shutil.ignore_patterns("local"))
    assert compose(["model=edcstfn"], conf).pretrain_max_epochs is None  # no conf/local: composes as before
    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text("# @package _global_\npretrain_max_epochs: 7\n"
                                                 "trainer:\n  devices: 3\n")
    cfg = compose(["model=edcstfn"], conf)
    assert (cfg.pretrain_max_epochs, cfg.trainer.devices) == (7, 3)
    assert compose(["model=edcstfn", "pretrain_max_epochs=5"], conf).pretrain_max_epochs == 5  # the command wins


def test_print_config_tree(capsys):
    from stf_bench.training.config_tree import print_config_tree

    print_config_tree(compose(["model=edcstfn", "paths.output_dir=/x", "dataset.source.n_dates=17"]))
    out = capsys.readouterr().out
    assert out.index("model") < out.index("dataset") < out.index("trainer") < out.index("other")
    assert "n_dates: 17" in out and "optimized_metric: val/rmse" in out
    assert compose([]).print_config is True


def test_metric_directions():
    from stf_bench.training.objective import MetricHistory, direction, objective_value

    assert [direction(m) for m in ("val/rmse", "val/ssim", "train/loss", "val/bias")] == \
        ["minimize", "maximize", "minimize", "minimize"]
    history = MetricHistory("val/bias")
    history.values = {0: -0.5, 1: 0.2, 2: float("nan")}
    history._record = lambda trainer: None
    assert history.best(None) == pytest.approx(0.2)  # closest to zero, NaN ignored
    ssim = MetricHistory("val/ssim")
    ssim.values, ssim._record = {0: 0.3, 1: 0.6, 2: 0.5}, lambda trainer: None
    assert ssim.best(None) == 0.6
    assert objective_value(None, "val/ssim") == -math.inf and objective_value(None, "val/rmse") == math.inf


def test_sweeper_direction_must_agree_with_the_metric(train_run, tiny, tmp_path):
    with pytest.raises(ConfigError, match="hydra.sweeper.direction=minimize contradicts optimized_metric=val/ssim"):
        train_run(*tiny("edcstfn"), "hparams_search=edcstfn_optuna", "optimized_metric=val/ssim")
    assert not (tmp_path / "run" / "run.json").exists()  # failed before any work


def test_optimized_metric_is_the_objective(train_run, tiny):
    value, run = train_run(*tiny("edcstfn"), "optimized_metric=val/ssim", "model.train.max_epochs=2")
    info = json.loads((run / "run.json").read_text())
    assert info["objective"] == {"metric": "val/ssim", "direction": "maximize", "value": value}
    assert 0 < value <= 1
    # val/rmse: the ModelCheckpoint's best score
    value, run = train_run(*tiny("edcstfn"), name="rmse")
    info = json.loads((run / "run.json").read_text())
    assert value == pytest.approx(info["best_val_rmse"]) and info["objective"]["metric"] == "val/rmse"


def test_callbacks_none_run_ends_without_checkpoints(train_run, tiny):
    value, run = train_run(*tiny("edcstfn"), "callbacks=none")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["checkpoints"] == {"best": None, "last": None}
    assert not list(run.rglob("*.ckpt"))
    assert math.isfinite(info["test"]["test/rmse"]) and value == pytest.approx(info["objective"]["value"])


def test_debug_fdr_cli(cli, tiny, data_dir, tmp_path):
    proc = cli("train.py", "debug=fdr", *tiny("edcstfn"), "logger=csv", f"paths.data_dir={data_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "debug" / "runs").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert "optimized_metric: val/rmse" in proc.stdout  # the config tree at start
    quiet = cli("train.py", "debug=fdr", *tiny("edcstfn"), "logger=csv", f"paths.data_dir={data_dir}",
                "print_config=false")
    assert quiet.returncode == 0 and "optimized_metric" not in quiet.stdout


def test_optimizer_groups_give_stages_their_own_learning_rate():
    """models.md part 1: independent stages train in one optimizer, with parameter groups where the rates differ."""
    import torch
    from omegaconf import OmegaConf

    from stf_bench.training.module import SupervisedModule

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "edcstfn.yaml"), resolve=True)
    cfg["optimizer_groups"] = [{"prefix": "decoder.", "lr": 0.5}]
    module = SupervisedModule(cfg, {"offset": 250.0, "scale": 60.0}, 60.0, {})
    opt = module.configure_optimizers()["optimizer"]
    lrs = [(g["lr"], sum(p.numel() for p in g["params"])) for g in opt.param_groups]
    decoder = sum(p.numel() for p in module.net.decoder.parameters())
    assert lrs == [(0.5, decoder), (1.0e-3, 278_209 - decoder)]
    cfg["optimizer_groups"] = [{"prefix": "sr.", "lr": 0.1}]
    with pytest.raises(ConfigError, match="'sr.' matches no trainable parameter"):
        SupervisedModule(cfg, {"offset": 250.0, "scale": 60.0}, 60.0, {}).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
