"""Fail fast (before loss-network pre-training), the plan printed before training, progress lines without a
terminal, and `trainer=debug` shortening pre-training."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.errors import ConfigError
from tests.training.conftest import REPO, compose_train, train_in_process


def cached_pieces(data_dir) -> set:
    return {p.name for p in data_dir.glob("*/*/pretrained/*.ckpt")}


def refused_before_pretraining(train_run, data_dir, *overrides, match: str) -> None:
    before = cached_pieces(data_dir)
    started = time.time()
    with pytest.raises(ConfigError, match=match):
        train_run(*overrides)
    assert time.time() - started < 20  # the tiny store build included; pre-training would come on top
    assert cached_pieces(data_dir) == before  # nothing pre-trained (the seed makes a new cache key)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_trainer_without_gpu(tiny, train_run, data_dir):
    refused_before_pretraining(train_run, data_dir, *tiny("edcstfn"), "seed=101", "trainer=gpu",
                               match=r"trainer\.accelerator=gpu but this machine has no CUDA GPU.*trainer=cpu")


def test_optimizer_value_that_is_not_a_number(tiny, train_run, data_dir):
    refused_before_pretraining(train_run, data_dir, *tiny("ganstfm"), "seed=102", "model.optimizer.lr=abc",
                               match=r"model\.optimizer\.lr='abc' \(a number is expected")


def test_batch_larger_than_the_epoch(tiny, train_run, data_dir):
    refused_before_pretraining(train_run, data_dir, *tiny("edcstfn"), "seed=103", "model.train.batch_size=4",
                               match=r"patches_per_epoch=2 is smaller than model\.train\.batch_size=4.*at least 4")


@pytest.mark.parametrize("override, key", [("model.train.patch_size=96", r"datamodule\.patch_size=96"),
                                           ("model.net.feature_encoder.recipe.patch=96",
                                            r"model\.net\.feature_encoder\.recipe\.patch=96")])
def test_patch_larger_than_the_scene(tiny, train_run, data_dir, override, key):
    refused_before_pretraining(train_run, data_dir, *tiny("edcstfn"), "seed=104", override,
                               match=key + r" .*larger than the scene \(64x64\)")


def test_unwritable_pretrained_cache(tiny, tmp_path):
    """A store whose pretrained/ cache cannot be written (a file stands in its way; root ignores read-only modes)."""
    data_dir = tmp_path / "data"
    cfg = compose_train(tiny("edcstfn"), data_dir, tmp_path / "setup")
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup()
    (datamodule.store.path / "pretrained").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"pre-trained loss network cache of paths\.data_dir=.*cannot write.*"
                                          r"model\.net\.feature_encoder\.ckpt=<path>"):
        train_in_process(tiny("edcstfn"), data_dir, tmp_path / "run")


def test_cli_refuses_in_seconds_with_exit_2(cli, tiny, data_dir):
    started = time.time()
    proc = cli("train.py", *tiny("edcstfn"), "seed=105", "model.optimizer.lr=abc", f"paths.data_dir={data_dir}")
    out = " ".join((proc.stdout + proc.stderr).replace("│", " ").split())
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "model.optimizer.lr='abc'" in out and "ConfigError" in out
    assert "loss network feature_encoder: training" not in out and time.time() - started < 60


def test_plan_progress_lines_and_restored_weights(tiny, train_run, data_dir, caplog):
    """One tiny run: the plan names its fields and warns past plan.warn_hours; with stdout not a terminal (pytest
    captures it) pre-training and training log one line per epoch with ETA; the probe leaves no trace."""
    caplog.set_level(logging.INFO)
    _, run_dir = train_run(*tiny("edcstfn"), "seed=106", "model.train.max_epochs=2", "plan.warn_hours=1e-9")
    text = caplog.text
    assert "plan: edcstfn on CPU" in text and "batch 2 x 32² patches, 2 patches per epoch" in text
    assert "pre-training feature_encoder: 1 epochs x " in text and "training: 2 epochs x 1 steps at " in text
    assert "total ≈ " in text and "peak memory ≈ " in text
    assert "exceed plan.warn_hours=1e-09" in text
    assert "pre-training feature_encoder: epoch 1/1 train=" in text
    for epoch in (1, 2):
        assert f"epoch {epoch}/2: " in text and "val/rmse=" in text and "ETA " in text
    plan = json.loads((run_dir / "run.json").read_text())["plan"]
    assert plan["train_step_s"] > 0 and 0 < plan["peak_memory_gb"] < plan["machine_memory_gb"]


def test_probe_restores_the_weights(tiny, data_dir, tmp_path):
    from stf_bench.training.plan import announce_plan
    from stf_bench.training.registry import lightning_module_class

    cfg = compose_train([*tiny("edcstfn"), "seed=107", "plan.probe_steps=1"], data_dir, tmp_path / "run")
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup()
    module = lightning_module_class("supervised")(model_cfg=OmegaConf.to_container(cfg.model, resolve=True),
                                                  norm=datamodule.norm.to_json(), data_range_k=60.0, dataset_id={})
    before = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.random.get_rng_state()
    announce_plan(cfg, datamodule, module)
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the `loaded` flag of the loss network too
    assert torch.equal(rng, torch.random.get_rng_state())


def test_debug_trainer_caps_pretraining(data_dir, tmp_path):
    debug = compose_train(["trainer=debug"], data_dir, tmp_path / "a")
    assert debug.pretrain_max_epochs == 1 and debug.trainer.fast_dev_run is True
    assert compose_train(["trainer=debug", "pretrain_max_epochs=3"], data_dir, tmp_path / "b").pretrain_max_epochs == 3
    assert compose_train([], data_dir, tmp_path / "c").pretrain_max_epochs is None  # the published recipe


def _size_check(model_id: str, patch: int, scene: tuple[int, int]):
    """check_model_config then check_sizes for `model=<id>` with this patch on a store of this scene size."""
    from types import SimpleNamespace

    from stf_bench.training.pipeline import check_model_config
    from stf_bench.training.preflight import check_sizes

    model = OmegaConf.load(REPO / "conf" / "model" / f"{model_id}.yaml")
    cfg = OmegaConf.create({"model": model, "datamodule": {"patch_size": patch}})
    store = SimpleNamespace(grid=SimpleNamespace(shape=scene), path="data/mine")
    check_model_config(cfg)
    check_sizes(cfg, SimpleNamespace(store=store))


def test_patch_advice_is_accepted_when_followed():
    """The suggested patch is below the scene and a multiple of the model's size multiple (DCSTFN: 16)."""
    with pytest.raises(ConfigError, match=r"model\.train\.patch_size=(\d+) or smaller \(a multiple of 16") as err:
        _size_check("dcstfn", 256, (227, 300))
    suggested = int(err.value.args[0].split("model.train.patch_size=")[1].split()[0])
    assert suggested == 224
    _size_check("dcstfn", suggested, (227, 300))


def test_fixed_size_model_on_small_scenes_names_what_works():
    """No patch trains SwinSTFM (256 only) on 227-row scenes: the advice is a larger region or another model."""
    with pytest.raises(ConfigError, match=r"swinstfm takes only 256x256 patches.*are 227x300: no patch size.*"
                                          r"at least 256x256 fine pixels.*model=dcstfn"):
        _size_check("swinstfm", 256, (227, 300))
    with pytest.raises(ConfigError, match=r"accepts only 256x256"):
        _size_check("swinstfm", 226, (227, 300))
    _size_check("dcstfn", OmegaConf.load(REPO / "conf" / "model" / "dcstfn.yaml").train.patch_size, (227, 300))
