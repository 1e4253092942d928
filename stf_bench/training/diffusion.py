"""The diffusion LightningModule: the network's denoising objective, an EMA of its weights, evaluation with the EMA.

The network exposes ``compute_loss(batch, epoch, pred=None)`` (its training objective at a random timestep) and a
``forward(batch)`` that samples deterministically; models.md part 2 section 9. Options (model config ``diffusion:``):

- ``ema_decay``: the EMA's decay once warmed up (0.995 for STFDiff);
- ``ema_every``: ``epoch`` (the official trainer calls ``EMA.update()`` once per epoch) or ``step``;
- ``ema_update_after``: the first updates (update numbers 0..N) copy the weights instead of averaging them;
- ``ema_warmup_power``: after those, decay = min(ema_decay, 1 - (1 + e)^-power) with e = update - N - 1 (0 for
  e <= 0), the warm-up of ema-pytorch that the official code used (update_after_step 100, power 2/3); null: the
  constant ``ema_decay`` right after the copies;
- ``val_sampling_steps`` (optional): DDIM steps of the per-epoch validation only, a cheaper model-selection signal
  (a 256 px scene costs one network evaluation per step); test, evaluate.py and predictions use the network's
  ``sampling_steps``. Absent or null: validation samples as the test does.

Validation, test and predictions use the EMA weights. A checkpoint stores them as ``net.*`` (what evaluate.py and
``restore_predictor`` load) and the online weights as ``online_net.*``; loading swaps them back, so resuming
continues the online weights. Gradient-norm clipping is the trainer's (``model.train.gradient_clip_val``).
"""

from __future__ import annotations

import copy

import torch

from stf_bench.errors import ConfigError
from stf_bench.models.prediction import ScenePredictor
from stf_bench.training.module import FusionModule

EMA_EVERY = ("epoch", "step")
OPTIONS = ("ema_decay", "ema_every", "ema_update_after", "ema_warmup_power")
ONLINE = "online_net."


def ema_decay(update: int, decay: float, update_after: int, power: float | None) -> float:
    """The decay of EMA update number ``update`` (0-based); 0 means copy the weights."""
    if update <= update_after:
        return 0.0
    if power is None:
        return decay
    e = update - update_after - 1
    return 0.0 if e <= 0 else min(decay, 1.0 - (1.0 + e) ** -power)


class DiffusionModule(FusionModule):
    def __init__(self, model_cfg: dict, norm: dict, data_range_k: float, dataset_id: dict) -> None:
        super().__init__(model_cfg, norm, data_range_k, dataset_id)
        if not hasattr(self.net, "compute_loss"):
            raise ConfigError(f"model {model_cfg['id']} uses lightning_module=diffusion but its network has no "
                              f"compute_loss; see the diffusion contract in models.md part 2 section 9.")
        options = model_cfg.get("diffusion") or {}
        missing = [k for k in OPTIONS if k not in options]
        if missing:
            raise ConfigError(f"model {model_cfg['id']}: the diffusion: block lacks {missing}; give "
                              f"{', '.join(OPTIONS)} (conf/model/stfdiff.yaml shows them).")
        if options["ema_every"] not in EMA_EVERY or not 0.0 <= float(options["ema_decay"]) < 1.0:
            raise ConfigError(f"model {model_cfg['id']}: diffusion.ema_every={options['ema_every']!r}, "
                              f"ema_decay={options['ema_decay']}; use ema_every in {EMA_EVERY} and 0 <= ema_decay < 1.")
        self.options = {k: options[k] for k in OPTIONS}
        self.val_steps = options.get("val_sampling_steps")
        if self.val_steps is not None and not 1 <= int(self.val_steps) <= int(getattr(self.net, "timesteps", 0)):
            raise ConfigError(f"model {model_cfg['id']}: diffusion.val_sampling_steps={self.val_steps}; use 1.."
                              f"{getattr(self.net, 'timesteps', '?')} (the network's timesteps) or null.")
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.predictor = ScenePredictor.from_model_cfg(self.ema, self.norm, model_cfg)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        parts = self.net.compute_loss(batch, self.current_epoch)
        self._check_loss(parts["loss"], parts)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=False, on_epoch=True, on_step=False,
                      batch_size=batch["fine_tgt"].shape[0])
        return parts["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.val_steps is None:
            return super().validation_step(batch, batch_idx)
        full, self.ema.sampling_steps = self.ema.sampling_steps, int(self.val_steps)
        try:
            super().validation_step(batch, batch_idx)
        finally:
            self.ema.sampling_steps = full

    @torch.no_grad()
    def update_ema(self) -> float:
        opts = self.options
        decay = ema_decay(int(self.ema_updates), float(opts["ema_decay"]), int(opts["ema_update_after"]),
                          opts["ema_warmup_power"])
        for avg, online in zip(self.ema.parameters(), self.net.parameters()):
            avg.lerp_(online, 1.0 - decay)
        self.ema_updates += 1
        return decay

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.options["ema_every"] == "step":
            self.update_ema()

    def on_train_epoch_end(self) -> None:
        if self.options["ema_every"] == "epoch":
            self.update_ema()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("net.")]:
            state[ONLINE + key[len("net."):]] = state.pop(key)
        for key in [k for k in state if k.startswith("ema.")]:
            state["net." + key[len("ema."):]] = state.pop(key)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        if not any(k.startswith(ONLINE) for k in state):
            return
        for key in [k for k in state if k.startswith("net.")]:
            state["ema." + key[len("net."):]] = state.pop(key)
        for key in [k for k in state if k.startswith(ONLINE)]:
            state["net." + key[len(ONLINE):]] = state.pop(key)

    def configure_optimizers(self):
        optimizer = self._optimizer("optimizer", [p for p in self.net.parameters() if p.requires_grad])
        scheduler = self._scheduler(optimizer)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
