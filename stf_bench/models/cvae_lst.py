"""CVAE-LSTFM (reconstructed): a conditional VAE that predicts the fine LST change from a reference pair.

Paper: "Spatiotemporal Fusion Network for Land Surface Temperature Based on a Conditional Variational Autoencoder",
IEEE Transactions on Geoscience and Remote Sensing, 2022 (https://ieeexplore.ieee.org/document/9795341); tested with
FY-4A and MODIS LST over the Heihe River Basin. Label: reconstructed. Only the abstract is public; the design below is
the one of stf_bench's catalogue (models.md part 1, "cvae_lst"), following the ideas the abstract names: a CVAE with
its own encoder and decoder, coarse and fine pairs combined in latent space, a robust compound loss, a deterministic
pre-training whose weights carry on into the CVAE, and a weighting of the reference predictions (here ICW).

- Condition encoder E_c([C_i, F_i, C2]) -> skips at H, H/2, H/4 and the prior (mu_p, log var_p), 16 channels at H/4.
- Recognition encoder E_q([C_i, F_i, C2, F2]) -> (mu_q, log var_q); training only, so it is declared in
  ``training_only_modules`` and left out of the parameter count. F2's unobserved pixels are replaced by the delta
  baseline b_i before E_q sees them (the datamodule stores 0 there).
- Decoder on [z, E_c stage 3] with U-Net skips from E_c; its 1x1 head is added to b_i = F_i + (C2 - C_i).
- z = mu_p in ``forward`` (prediction) and in the pre-training epochs; z ~ q by reparameterisation in the CVAE phase.

Choices of ours where the catalogue is silent: zero padding; log-variances clamped to [-10, 10] (keeps exp() finite
on out-of-range inputs); the KL divergence summed over latent elements and divided by the number of fine pixels, so
that it is on the per-pixel scale of the other terms; with two references the loss is taken on the ICW-combined
prediction and the KL is the mean of the two references' KL.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.models.blocks.fusion import delta_baseline
from stf_bench.models.blocks.masked import fill_invalid, masked_charbonnier
from stf_bench.models.blocks.msssim import ssim
from stf_bench.models.blocks.weighting import icw_combine

log = logging.getLogger(__name__)

LOGVAR_RANGE = (-10.0, 10.0)


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]


class Encoder(nn.Module):
    """Three stages (H, H/2, H/4; widths 32, 64, 128) and a 1x1 head to (mu, log var) with `latent` channels each."""

    def __init__(self, in_ch: int, latent: int):
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(*_conv(in_ch, 32), *_conv(32, 32)),
            nn.Sequential(*_conv(32, 64, stride=2), *_conv(64, 64)),
            nn.Sequential(*_conv(64, 128, stride=2), *_conv(128, 128)),
        ])
        self.head = nn.Conv2d(128, 2 * latent, 1)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        mu, logvar = self.head(x).chunk(2, dim=1)
        return skips, mu, logvar.clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    """[z, stage 3] -> 128; x2, [., stage 2] -> 64 -> 64; x2, [., stage 1] -> 32 -> 32; 1x1 -> 1 (linear)."""

    def __init__(self, latent: int):
        super().__init__()
        self.bottom = nn.Sequential(*_conv(latent + 128, 128))
        self.up2 = nn.Sequential(*_conv(128 + 64, 64), *_conv(64, 64))
        self.up1 = nn.Sequential(*_conv(64 + 32, 32), *_conv(32, 32))
        self.head = nn.Conv2d(32, 1, 1)

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        s1, s2, s3 = skips
        x = self.bottom(torch.cat([z, s3], 1))
        x = self.up2(torch.cat([F.interpolate(x, size=s2.shape[-2:], mode="bilinear", align_corners=False), s2], 1))
        x = self.up1(torch.cat([F.interpolate(x, size=s1.shape[-2:], mode="bilinear", align_corners=False), s1], 1))
        return self.head(x)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, elementwise."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)


class CVAELST(nn.Module):
    """One conditional-VAE prediction per reference pair, combined with ICW when there are two.

    Reads `fine_ref`, `coarse_ref`, `coarse_tgt` and, when present, `fine_ref2`, `coarse_ref2`. The loss
    (``compute_loss``) also reads `fine_tgt` and `valid_tgt`. `max_epochs` is the run's total (the KL ramp covers
    `beta_ramp` of the epochs after the first `pretrain_epochs`).
    """

    training_only_modules = ("recognition_encoder",)

    def __init__(self, max_epochs: int, pretrain_epochs: int, latent_channels: int, beta: float, beta_ramp: float,
                 charbonnier_eps: float, ssim_weight: float, data_range: float, icw_kernel: int, icw_eps_k: float):
        super().__init__()
        self.max_epochs, self.pretrain_epochs = int(max_epochs), int(pretrain_epochs)
        self.beta, self.beta_ramp = beta, beta_ramp
        self.charbonnier_eps, self.ssim_weight, self.data_range = charbonnier_eps, ssim_weight, data_range
        self.icw_kernel, self.icw_eps_k = icw_kernel, icw_eps_k
        if self.pretrain_epochs >= self.max_epochs:
            log.warning("cvae_lst: pretrain_epochs=%d >= max_epochs=%d, so the run never reaches the CVAE phase "
                        "(model.net.pretrain_epochs)", self.pretrain_epochs, self.max_epochs)
        self.norm = None  # set by the training core; ICW's epsilon is given in Kelvin
        self.condition_encoder = Encoder(3, latent_channels)
        self.recognition_encoder = Encoder(4, latent_channels)
        self.decoder = Decoder(latent_channels)

    def beta_at(self, epoch: int) -> float:
        """0 during pre-training, then rising linearly from 0 to `beta` over `beta_ramp` of the CVAE epochs."""
        ramp = self.beta_ramp * (self.max_epochs - self.pretrain_epochs)
        if ramp <= 0:
            return self.beta
        return self.beta * min(1.0, max(0.0, (epoch - self.pretrain_epochs) / ramp))

    @staticmethod
    def _references(batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        refs = [(batch["fine_ref"], batch["coarse_ref"])]
        second = [k in batch for k in ("fine_ref2", "coarse_ref2")]
        if any(second) and not all(second):
            raise ValueError("cvae_lst: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        if all(second):
            refs.append((batch["fine_ref2"], batch["coarse_ref2"]))
        return refs

    def _predict(self, fine: torch.Tensor, coarse: torch.Tensor, batch: dict, sample: bool):
        """(prediction for one reference, its KL per fine pixel or None). `sample`: z ~ q(z | ..., F2)."""
        cond = torch.cat([coarse, fine, batch["coarse_tgt"]], 1)
        skips, mu_p, logvar_p = self.condition_encoder(cond)
        baseline = delta_baseline(fine, coarse, batch["coarse_tgt"])
        if not sample:
            return baseline + self.decoder(mu_p, skips), None
        target = torch.where(batch["valid_tgt"].bool(), batch["fine_tgt"], baseline)
        _, mu_q, logvar_q = self.recognition_encoder(torch.cat([cond, target], 1))
        z = mu_q + (0.5 * logvar_q).exp() * torch.randn_like(mu_q)
        kl = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).sum() / fine.numel()
        return baseline + self.decoder(z, skips), kl

    def _combine(self, preds: list[torch.Tensor], batch: dict) -> torch.Tensor:
        if len(preds) == 1:
            return preds[0]
        if self.norm is None:
            raise RuntimeError("cvae_lst: self.norm is not set; the training core sets it before fitting "
                               "(ICW's epsilon is 0.05 K in normalized units)")
        return icw_combine(preds[0], preds[1], batch, self.norm.kelvin_to_units(self.icw_eps_k), self.icw_kernel)

    def forward(self, batch: dict) -> torch.Tensor:
        """Prediction: z = mu_p for every reference."""
        return self._combine([self._predict(f, c, batch, sample=False)[0] for f, c in self._references(batch)], batch)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Charbonnier + w (1 - SSIM) on observed target pixels, + beta(epoch) KL(q || p) in the CVAE phase.

        Pre-training (epoch < pretrain_epochs) is deterministic (z = mu_p, no E_q, no KL) and may reuse `pred`;
        the CVAE phase samples z from q, so `pred` (a z = mu_p prediction) is not used there.
        """
        cvae = epoch >= self.pretrain_epochs
        if cvae or pred is None:
            outs = [self._predict(f, c, batch, sample=cvae) for f, c in self._references(batch)]
            pred = self._combine([p for p, _ in outs], batch)
        valid = batch["valid_tgt"].bool()
        target = fill_invalid(batch["fine_tgt"], valid, pred)
        charbonnier = masked_charbonnier(pred, target, valid, self.charbonnier_eps)
        structure = ssim(pred, target, self.data_range)
        loss = charbonnier + self.ssim_weight * (1 - structure)
        terms = {"charbonnier": charbonnier.detach(), "ssim": structure.detach()}
        if cvae:
            kl = torch.stack([k for _, k in outs]).mean()
            beta = self.beta_at(epoch)
            loss = loss + beta * kl
            terms.update(kl=kl.detach(), beta=torch.tensor(beta, device=loss.device))
        return {"loss": loss, **terms}
