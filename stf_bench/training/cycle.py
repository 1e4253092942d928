"""The adversarial module's ``cycle`` mode (model config ``adversarial: {mode: cycle}``): CycleGAN training.

Two generators and two discriminators (models.md part 2 §1, CycleGAN defaults): each step updates both generators on
the network's cycle and identity terms (``cycle_terms``) plus ``adv_weight`` times both GAN terms, then both
discriminators on real images against fakes drawn from a 50-image pool. The network also decides when to snapshot
its generators (``snapshot_due`` / ``take_snapshot``), at the end of a training epoch.
"""

from __future__ import annotations

import torch

from stf_bench.errors import ConfigError
from stf_bench.training.adversarial import AdversarialModule, d_loss, g_loss


class ImagePool:
    """CycleGAN's history of generated images: until full it passes images through and keeps them; then each image
    is, with probability 1/2, swapped for a stored one (which is returned) or passed through."""

    def __init__(self, size: int) -> None:
        self.size, self.images = int(size), []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                k = int(torch.randint(len(self.images), ()))
                out.append(self.images[k])
                self.images[k] = image
            else:
                out.append(image)
        return torch.stack(out)


class CycleAdversarialModule(AdversarialModule):
    """Options (model config ``adversarial:``): mode (cycle), pool_size (50), clip_g, clip_d."""

    def __init__(self, model_cfg: dict, norm: dict, data_range_k: float, dataset_id: dict) -> None:
        super().__init__(model_cfg, norm, data_range_k, dataset_id)
        for attr in ("cycle_terms", "snapshot_due", "take_snapshot"):
            if not hasattr(self.net, attr):
                raise ConfigError(f"model {model_cfg['id']} uses adversarial.mode=cycle but its network has no "
                                  f"{attr!r} (see stf_bench/models/cyclegan_stf.py).")
        if self.net.gan_mode == "wgan_clip":
            raise ConfigError(f"model {model_cfg['id']}: adversarial.mode=cycle does not clip D weights; use "
                              f"gan_mode lsgan, lsgan_sigmoid or bce.")
        pool = int(self.options.get("pool_size", 50))
        self.pools = {"a": ImagePool(pool), "b": ImagePool(pool)}

    def training_step(self, batch: dict, batch_idx: int) -> None:
        g_opt, d_opt = self.optimizers()
        net, mode, opts = self.net, self.net.gan_mode, self.options
        d_a, d_b = net.discriminator["a"], net.discriminator["b"]
        parts, x = net.cycle_terms(batch)
        adv = g_loss(mode, d_b(x["fake_b"])) + g_loss(mode, d_a(x["fake_a"]))
        loss_g = parts["loss"] + net.adv_weight * adv
        self._check_loss(loss_g, {**parts, "adv": adv})
        g_opt.zero_grad()
        self.manual_backward(loss_g)
        if opts["clip_g"]:
            self.clip_gradients(g_opt, gradient_clip_val=opts["clip_g"], gradient_clip_algorithm="norm")
        g_opt.step()

        fake_a, fake_b = self.pools["a"].query(x["fake_a"]), self.pools["b"].query(x["fake_b"])
        loss_d = d_loss(mode, d_a(x["real_a"]), d_a(fake_a)) + d_loss(mode, d_b(x["real_b"]), d_b(fake_b))
        d_opt.zero_grad()
        self.manual_backward(loss_d)
        if opts["clip_d"]:
            self.clip_gradients(d_opt, gradient_clip_val=opts["clip_d"], gradient_clip_algorithm="norm")
        d_opt.step()
        logs = {f"train/{k}": v for k, v in parts.items() if k != "loss"}
        logs.update({"train/loss": loss_g.detach(), "train/adv": adv.detach(), "train/d_loss": loss_d.detach()})
        self.log_dict(logs, on_epoch=True, on_step=False, batch_size=batch["fine_ref"].shape[0])

    def on_train_epoch_end(self) -> None:
        if self.net.snapshot_due(self.current_epoch):
            self.net.take_snapshot()
