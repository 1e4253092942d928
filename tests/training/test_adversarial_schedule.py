"""The adversarial module's schedule: D rests during G's warm-up; the model's scheduler steps G, and D once it trains."""

import lightning as L
import torch
from omegaconf import OmegaConf

from stf_bench.training.adversarial import AdversarialModule
from tests.models.test_model_contract import model_cfg, sample_batch


class DSnapshots(L.Callback):
    def __init__(self):
        self.after_epoch = []

    def on_train_epoch_end(self, trainer, module):
        self.after_epoch.append([p.detach().clone() for p in module.net.discriminator.parameters()])


def test_discriminator_rests_in_warmup_and_both_learning_rates_decay(tmp_path):
    cfg = OmegaConf.merge(model_cfg("gan_generic"), {
        "adversarial": {"warmup_epochs": 1},
        "scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 1, "gamma": 0.5}})
    torch.manual_seed(0)
    module = AdversarialModule(OmegaConf.to_container(cfg, resolve=True), {"offset": 250.0, "scale": 60.0}, 60.0, {})
    start = [p.detach().clone() for p in module.net.discriminator.parameters()]
    batch = {k: v for k, v in sample_batch(cfg, batch=1).items() if k != "meta"}
    loader = torch.utils.data.DataLoader([{k: v[0] for k, v in batch.items()}], batch_size=1)
    snaps = DSnapshots()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, callbacks=[snaps],
                        default_root_dir=tmp_path)
    trainer.fit(module, loader, loader)
    warm, trained = snaps.after_epoch
    assert all(torch.equal(a, b) for a, b in zip(start, warm))  # epoch 0: G only
    assert any(not torch.equal(a, b) for a, b in zip(warm, trained))  # epoch 1: D learns
    g_opt, d_opt = module.optimizers()
    base = cfg.optimizer.lr
    assert [o.param_groups[0]["lr"] for o in (g_opt, d_opt)] == [base * 0.25, cfg.d_optimizer.lr * 0.5]
