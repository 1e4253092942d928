"""The adversarial LightningModule: manual optimization of a generator and its discriminator.

One step predicts once, updates D on the detached prediction, then updates G on the same prediction (reconstruction
terms from the model's ``compute_loss`` plus ``adv_weight`` times the generator's GAN term), as models.md part 2 §0.
During ``warmup_epochs`` (and outside a staged model's GAN stage) G trains on its reconstruction terms alone and D
is not updated. The model's ``scheduler``
steps both optimizers once per epoch, as the published GAN recipes schedule G and D alike (D's from its first update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.training.module import FusionModule


def d_loss(mode: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if mode == "bce":  # pix2pix: 0.5 [BCE(D(real), 1) + BCE(D(fake), 0)] on logits (the sigmoid is inside the loss)
        return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if mode == "lsgan_sigmoid":
        real, fake = torch.sigmoid(real), torch.sigmoid(fake)
    if mode in ("lsgan", "lsgan_sigmoid"):
        return 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())
    return fake.mean() - real.mean()


def g_loss(mode: str, fake: torch.Tensor) -> torch.Tensor:
    if mode == "bce":  # the non-saturating generator term BCE(D(G), 1)
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if mode == "lsgan_sigmoid":
        fake = torch.sigmoid(fake)
    if mode in ("lsgan", "lsgan_sigmoid"):
        return 0.5 * ((fake - 1) ** 2).mean()
    return -fake.mean()


GAN_MODES = ("lsgan", "lsgan_sigmoid", "wgan_clip", "bce")


class AdversarialModule(FusionModule):
    """Options (model config ``adversarial:``): regenerate_for_g, warmup_epochs, clip_g, clip_d, wgan_clip."""

    def __init__(self, model_cfg: dict, norm: dict, data_range_k: float, dataset_id: dict) -> None:
        super().__init__(model_cfg, norm, data_range_k, dataset_id)
        self.automatic_optimization = False
        for attr in ("discriminator", "d_input", "discriminate", "adv_weight", "gan_mode", "compute_loss"):
            if not hasattr(self.net, attr):
                raise ConfigError(f"model {model_cfg['id']} uses lightning_module=adversarial but its network has "
                                  f"no {attr!r}; see the adversarial contract in models.md part 2 §0.")
        if self.net.gan_mode not in GAN_MODES:
            raise ConfigError(f"model {model_cfg['id']}: gan_mode={self.net.gan_mode!r}; use one of {GAN_MODES}.")
        self.options = {"regenerate_for_g": False, "warmup_epochs": 0, "clip_g": None, "clip_d": None,
                        "wgan_clip": 0.01, **(model_cfg.get("adversarial") or {})}

    def generator_parameters(self):
        skip = {id(p) for p in self.net.discriminator.parameters()}
        return [p for p in self.net.parameters() if p.requires_grad and id(p) not in skip]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        g_opt, d_opt = self.optimizers()
        net, mode, opts = self.net, self.net.gan_mode, self.options
        pred = net(batch)
        warm = not self._gan_active()
        loss_d = pred.new_zeros(()) if warm else self._d_step(batch, pred, d_opt)

        if opts["regenerate_for_g"]:
            pred = net(batch)
        parts = dict(net.compute_loss(batch, self.current_epoch, pred=pred))
        # D is not even run in warm-up: its BatchNorm statistics must not move either
        adv = pred.new_zeros(()) if warm else g_loss(mode, net.discriminate(net.d_input(batch, pred)))
        loss_g = parts["loss"] + net.adv_weight * adv
        self._check_loss(loss_g, {**parts, "adv": adv, "d": loss_d})
        g_opt.zero_grad()
        self.manual_backward(loss_g)
        if opts["clip_g"]:
            self.clip_gradients(g_opt, gradient_clip_val=opts["clip_g"], gradient_clip_algorithm="norm")
        g_opt.step()
        logs = {f"train/{k}": v for k, v in parts.items() if k != "loss"}
        logs.update({"train/loss": loss_g.detach(), "train/adv": adv.detach(), "train/d_loss": loss_d.detach()})
        self.log_dict(logs, on_epoch=True, on_step=False, batch_size=batch["fine_tgt"].shape[0])

    def _gan_active(self) -> bool:
        """False during ``warmup_epochs`` and, for a staged model (``adversarial_at``), outside its GAN stage."""
        epoch = self.current_epoch
        if epoch < self.options["warmup_epochs"]:
            return False
        return net.adversarial_at(epoch) if hasattr(net := self.net, "adversarial_at") else True

    def _d_step(self, batch: dict, pred: torch.Tensor, d_opt) -> torch.Tensor:
        net, mode, opts = self.net, self.net.gan_mode, self.options
        real = net.discriminate(net.d_input(batch, batch["fine_tgt"]))
        fake = net.discriminate(net.d_input(batch, pred.detach()))
        loss_d = d_loss(mode, real, fake)
        d_opt.zero_grad()
        self.manual_backward(loss_d)
        if opts["clip_d"]:
            self.clip_gradients(d_opt, gradient_clip_val=opts["clip_d"], gradient_clip_algorithm="norm")
        d_opt.step()
        if mode == "wgan_clip":
            with torch.no_grad():
                for p in net.discriminator.parameters():
                    p.clamp_(-opts["wgan_clip"], opts["wgan_clip"])
        return loss_d

    def on_validation_epoch_end(self) -> None:
        """Manual optimization steps no scheduler by itself: step it on this epoch's validation score."""
        values = self._log_scores("val")
        schedulers = self.lr_schedulers()
        if schedulers is None or not values or self.trainer.sanity_checking:
            return
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        if not self._gan_active():
            schedulers = schedulers[:1]  # D's schedule starts with D's training
        for scheduler in schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(values[self.model_cfg.get("scheduler_monitor", "val/rmse").split("/")[-1]])
            else:
                scheduler.step()

    def _d_optimizer(self):
        """D's optimizer; ``optimizer_groups`` name generator parameters, so they do not apply here."""
        key = "d_optimizer" if self.model_cfg.get("d_optimizer") else "optimizer"
        return instantiate(self.model_cfg[key])(params=list(self.net.discriminator.parameters()))

    def configure_optimizers(self):
        g_opt = self._optimizer("optimizer", self.generator_parameters())
        d_opt = self._d_optimizer()
        schedulers = [s["scheduler"] for s in (self._scheduler(g_opt), self._scheduler(d_opt)) if s]
        return [g_opt, d_opt], schedulers
