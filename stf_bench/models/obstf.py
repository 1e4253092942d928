"""OBSTF: object-based spatiotemporal fusion (reconstructed).

Paper: "An object-based spatiotemporal fusion model for remote sensing images", European Journal of Remote Sensing,
2021, doi 10.1080/22797254.2021.1879683. Label: reconstructed. No code and no readable abstract: the design is
specs/models.md part 2 §4 (the survey files the paper under GANs).

- Objects: torch SLIC on F1 without gradient (``blocks/slic.py``): seeds on a 16 px grid, 5 iterations, 3x3 nearest
  seeds per pixel, distance sqrt((dv/0.1)^2 + (dxy/16)^2) with dv in normalized units.
- Object change: dC_obj = per-object mean of C2 - C1 (scatter-add), broadcast back to the object's pixels.
- Generator: U-Net on [F1, C1, C2, dC_obj], encoder 32/64/128/256 (two Conv3x3 + LeakyReLU 0.2 per level, max-pool
  between levels, no normalization); decoder bilinear x2 -> cat(skip) -> two Conv3x3 + LeakyReLU; head Conv1x1 32->1.
  Output = F1 + dC_obj + head (linear). 1,947,169 parameters.
- Discriminator: the §6 PatchGAN (``section6_patchgan``) on cat(image, C2), 2,765,505 parameters.
- Loss: masked L1 + (1 - MS-SSIM, product variant) + adv_weight * LSGAN (0.01 in the spec's G loss; the adversarial
  module's ``lsgan`` G term carries a 1/2, so ``adv_weight`` is 0.02, as for MLFF-GAN in §6).

Whole scenes: the model has no fixed size, so the evaluation tiler predicts a scene in one pass (reflect-padded to a
multiple of 8) and SLIC segments the whole scene; objects never break at tile edges. Training patches are segmented
patch by patch (objects are cut at patch edges there). MS-SSIM compares whole patches, so unobserved target pixels
are filled with the detached prediction first (they add no error); L1 is averaged over observed pixels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import fill_invalid, masked_l1
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.patchgan import section6_patchgan
from stf_bench.models.blocks.slic import object_mean, slic

GAN_MODES = ("lsgan", "lsgan_sigmoid", "wgan_clip", "bce")


def _double_conv(cin: int, cout: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(slope),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(slope))


class UNet(nn.Module):
    """Max-pool encoder / bilinear decoder with concatenated skips and a linear Conv1x1 head."""

    def __init__(self, in_ch: int, widths: tuple[int, ...], slope: float = 0.2):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.encoder = nn.ModuleList(_double_conv(a, b, slope) for a, b in zip((in_ch, *widths[:-1]), widths))
        self.decoder = nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i], slope)
                                     for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


class OBSTF(nn.Module):
    """Object-guided GAN generator (reads ``fine_ref``, ``coarse_ref``, ``coarse_tgt``) with a §6 PatchGAN."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), negative_slope: float = 0.2,
                 slic_grid: int = 16, slic_iterations: int = 5, slic_value_scale: float = 0.1,
                 slic_space_scale: float = 16.0, l1_weight: float = 1.0, ssim_weight: float = 1.0,
                 data_range: float = 1.0, adv_weight: float = 0.02, gan_mode: str = "lsgan"):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"obstf: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if slic_grid < 1 or slic_iterations < 1 or slic_value_scale <= 0 or slic_space_scale <= 0:
            raise ConfigError(f"obstf: model.net.slic_* must be positive (grid {slic_grid}, iterations "
                              f"{slic_iterations}, value scale {slic_value_scale}, space scale {slic_space_scale})")
        self.slic_args = {"grid": int(slic_grid), "iterations": int(slic_iterations),
                          "value_scale": float(slic_value_scale), "space_scale": float(slic_space_scale)}
        self.l1_weight, self.ssim_weight, self.data_range = l1_weight, ssim_weight, data_range
        self.adv_weight, self.gan_mode = adv_weight, gan_mode
        self.norm = None  # set by the training core; no Kelvin quantity is needed
        self.generator = UNet(4, widths, negative_slope)
        self.discriminator = section6_patchgan(2)

    def objects(self, fine: torch.Tensor) -> torch.Tensor:
        """(B,H,W) SLIC labels of the fine reference."""
        return slic(fine, **self.slic_args)

    def object_change(self, batch: dict) -> torch.Tensor:
        """dC_obj: the mean of C2 - C1 over each F1 object, on the object's pixels."""
        return object_mean(batch["coarse_tgt"] - batch["coarse_ref"], self.objects(batch["fine_ref"]))

    def forward(self, batch: dict) -> torch.Tensor:
        f1, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        change = self.object_change(batch)
        return f1 + change + self.generator(torch.cat([f1, c1, c2, change], 1))

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """The discriminator judges the image given C2."""
        return torch.cat([image, batch["coarse_tgt"]], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L1 over observed target pixels + (1 - MS-SSIM) on the gap-filled target (the module adds the GAN term)."""
        if pred is None:
            pred = self(batch)
        valid = batch["valid_tgt"].bool()
        l1 = masked_l1(pred, batch["fine_tgt"], valid)
        target = fill_invalid(batch["fine_tgt"], valid, pred)
        visual = 1 - ms_ssim(pred, target, self.data_range, variant="product")
        return {"loss": self.l1_weight * l1 + self.ssim_weight * visual, "l1": l1.detach(), "msssim": visual.detach()}
