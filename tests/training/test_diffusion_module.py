"""The diffusion LightningModule: EMA schedule and updates, evaluation and checkpoints with the EMA weights,
resuming with the online weights, and a recorded sampling setup in run.json."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from stf_bench.errors import ConfigError
from stf_bench.run_folder import load_checkpoint_file
from stf_bench.training.diffusion import DiffusionModule, ema_decay
from stf_bench.training.registry import lightning_module_class

NET = {"_target_": "stf_bench.models.stfdiff.STFDiff", "dim": 16, "sampling_steps": 2}
NORM = {"offset": 250.0, "scale": 60.0}
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")


def model_cfg(**ema) -> dict:
    return {"id": "stfdiff", "lightning_module": "diffusion", "size_multiple": 4, "fixed_size": None, "net": NET,
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2}, "scheduler": None,
            "diffusion": {"ema_decay": 0.5, "ema_every": "epoch", "ema_update_after": 0, "ema_warmup_power": None,
                          **ema}}


def module(**ema) -> DiffusionModule:
    torch.manual_seed(0)
    return DiffusionModule(model_cfg(**ema), NORM, 30.0, {"name": "t"})


def samples(n=4, size=16):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        s = {k: torch.rand(1, size, size, generator=g) for k in KEYS}
        s["valid_tgt"] = torch.ones(1, size, size, dtype=torch.bool)
        out.append(s)
    return out


class Snapshots(L.Callback):
    """The online weights at the end of each training epoch (before the module's EMA update reads them)."""

    def __init__(self):
        self.weights = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights.append([p.detach().clone() for p in pl_module.net.parameters()])


def fit(m, epochs=2, callbacks=(), **kw):
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks), **kw)
    trainer.fit(m, train_dataloaders=DataLoader(samples(), batch_size=2))
    return trainer


def test_registry_and_options():
    assert lightning_module_class("diffusion") is DiffusionModule
    with pytest.raises(ConfigError, match="ema_every"):
        module(ema_every="batch")
    cfg = model_cfg()
    del cfg["diffusion"]["ema_update_after"]
    with pytest.raises(ConfigError, match="ema_update_after"):
        DiffusionModule(cfg, NORM, 30.0, {})


def test_ema_decay_schedule_of_the_official_trainer():
    """ema-pytorch as configured there: updates 0..100 copy, then 1 - (1 + e)^(-2/3) capped at 0.995."""
    d = [ema_decay(n, 0.995, 100, 2 / 3) for n in (0, 100, 101, 102, 110, 10_000)]
    assert d[:3] == [0.0, 0.0, 0.0]
    assert d[3] == pytest.approx(1 - 2 ** (-2 / 3)) and d[4] == pytest.approx(1 - 10 ** (-2 / 3))
    assert d[5] == 0.995
    assert [ema_decay(n, 0.995, 0, None) for n in (0, 1, 5)] == [0.0, 0.995, 0.995]


def test_epoch_ema_averages_the_online_weights_and_evaluation_uses_it():
    m, snaps = module(), Snapshots()
    fit(m, epochs=2, callbacks=[snaps])
    assert int(m.ema_updates) == 2
    for avg, w0, w1, online in zip(m.ema.parameters(), *snaps.weights, m.net.parameters()):
        assert torch.allclose(avg, 0.5 * w0 + 0.5 * w1, atol=1e-6)  # update 0 copies, update 1 averages at 0.5
        assert torch.equal(online, w1)
    assert (snaps.weights[0][0] - snaps.weights[1][0]).abs().max() > 0  # training moved the weights
    # validation, test and predictions run the EMA network
    assert m.predictor.net is m.ema
    b = {k: v[None] for k, v in samples(1)[0].items()}
    kelvin = m.predict_kelvin(b)
    assert torch.allclose(kelvin, 250.0 + 60.0 * m.ema.eval()(b))
    assert (kelvin - (250.0 + 60.0 * m.net.eval()(b))).abs().max() > 1e-4


def test_step_ema_updates_after_every_optimizer_step():
    m = module(ema_every="step")
    fit(m, epochs=1)
    assert int(m.ema_updates) == 2  # 4 samples, batch 2


def test_checkpoint_holds_the_ema_as_net_and_resumes_the_online_weights(tmp_path):
    m = module()
    trainer = fit(m, epochs=2)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    state = load_checkpoint_file(path)["state_dict"]
    # what evaluate.py's restore_predictor loads (the "net." keys) is the EMA
    for (name, avg), online in zip(m.ema.named_parameters(), m.net.parameters()):
        assert torch.equal(state["net." + name], avg) and torch.equal(state["online_net." + name], online)
    assert not any(k.startswith("ema.") for k in state) and int(state["ema_updates"]) == 2
    # resuming restores both: one more epoch continues from the online weights and counts a third EMA update
    resumed = module()
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[snaps := Snapshots()])
    before = {}

    class Start(L.Callback):
        def on_train_start(self, trainer, pl_module):
            before["net"] = [p.detach().clone() for p in pl_module.net.parameters()]
            before["ema"] = [p.detach().clone() for p in pl_module.ema.parameters()]

    trainer.callbacks.append(Start())
    trainer.fit(resumed, train_dataloaders=DataLoader(samples(), batch_size=2), ckpt_path=path)
    assert all(torch.equal(a, b) for a, b in zip(before["net"], m.net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before["ema"], m.ema.parameters()))
    assert int(resumed.ema_updates) == 3 and len(snaps.weights) == 1


def test_short_run_records_sampling_and_saves_the_ema(tiny, train_run):
    overrides = [*tiny("stfdiff"), "model.net.dim=16", "model.net.sampling_steps=2", "model.net.n_samples=2",
                 "model.net.sampling_seed=7", "model.diffusion.ema_update_after=0",
                 "model.diffusion.ema_warmup_power=null"]
    _, run_dir = train_run(*overrides)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished", info.get("error")
    assert info["sampling"] == {"sampling_steps": 2, "n_samples": 2, "sampling_seed": 7, "eta": 0.0}
    state = load_checkpoint_file(info["checkpoints"]["last"])["state_dict"]
    assert any(k.startswith("online_net.") for k in state) and int(state["ema_updates"]) == 1


def test_validation_samples_with_val_sampling_steps_and_test_with_the_full_count():
    m = module(val_sampling_steps=1)
    seen = []
    sample = m.ema.sample

    def spy(*args, **kwargs):
        seen.append(m.ema.sampling_steps)
        return sample(*args, **kwargs)

    m.ema.sample = spy
    b = {k: v[None] for k, v in samples(1)[0].items()}
    m.validation_step(b, 0)
    m.test_step(b, 0)
    assert seen == [1, NET["sampling_steps"]] and m.ema.sampling_steps == NET["sampling_steps"]
    with pytest.raises(ConfigError, match=r"val_sampling_steps=0; use 1\.\.100"):
        module(val_sampling_steps=0)
