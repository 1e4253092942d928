"""experiment=zoo_smoke: its sweep lists every deep model by itself, and each model's job composes to settings it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from stf_bench.resolvers import register

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
DEEP = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if OmegaConf.load(p).lightning_module != "none")


def _compose(overrides: list[str]):
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=["experiment=zoo_smoke", *overrides], return_hydra_config=True)


def test_sweep_lists_every_deep_model_and_no_baseline():
    cfg = _compose([])
    assert cfg.hydra.sweeper.params.model.split(",") == DEEP
    assert {"edcstfn", "ganstfm", "swinstfm"} <= set(DEEP)


@pytest.mark.parametrize("model_id", DEEP)
def test_each_job_gets_a_patch_it_accepts_and_its_own_pairing(model_id):
    cfg = _compose([f"model={model_id}"])
    model = cfg.model
    assert cfg.dataset.name == "synthetic_small" and cfg.trainer.max_time == "00:00:02:00"
    patch = int(cfg.datamodule.patch_size)
    assert patch == (model.fixed_size or 64) and patch % int(model.size_multiple) == 0
    assert cfg.pairing.mode == model.get("pairing", "two_refs" if int(model.n_refs) == 2 else "previous")
