"""CGMFN-LST: conditional generative model fusion network for land-surface temperature (reconstructed).

Paper: "Conditional Generative Model Fusion Network for Land Surface Temperature Generation", IEEE, 2025
(https://ieeexplore.ieee.org/document/11034654). Label: reconstructed. Designed for LST; no code and no readable
abstract: the design is specs/models.md part 2 §10, a two-sensor conditional GAN in the style of the STF-LST
authors' LST cGANs (WGAST, arXiv 2508.06485, itself derived from MLFF-GAN).

- Encoders: a fine encoder on F1 and one coarse encoder shared by C1 and C2; four levels 32/64/128/256, each
  Conv3x3 (stride 2 from level 2 on) + ResBlock (Conv3x3 -> LeakyReLU 0.2 -> Conv3x3, plus identity).
- Fusion per level: delta = C2_k - C1_k, A = AdaIN(F1_k, C2_k), fused = A + sigmoid(Conv3x3([delta, A] -> 1)) *
  Conv1x1(delta).
- Decoder from fused_4: ConvTranspose4x4 s2 -> cat(fused_k) -> Conv1x1 (2C -> C) -> ResBlock, down to level 1;
  head Conv3x3 32 -> 1; output = F1 + head (linear). 5,126,597 parameters.
- Discriminator: the §6 PatchGAN with spectral norm in place of BatchNorm, on cat(image, C2): 2,763,713 parameters.
- Loss: L1 + (1 - SSIM) + 0.5 * L1(A_32(pred - F1), A_32(C2 - C1)) + 0.01 LSGAN (``adv_weight`` 0.02: the adversarial
  module's lsgan G term carries a 1/2). The third term asks the predicted change to agree with MODIS at about 1 km and
  ignores a constant sensor bias. L1 averages over observed target pixels; SSIM compares the gap-filled target
  (unobserved pixels add no error); the coarse term's target is MODIS's change, not F2, so it uses every pixel.
- ``gaussian_sigma``: an optional WGAST-like Gaussian post-filter of the head (0 = off, the default).

Assumed (models.md): everything except "conditional generative model for LST". AdaIN statistics are per sample and
channel over the spatial extent, eps 1e-5 (as MLFF-GAN's).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool
from stf_bench.models.blocks.masked import fill_invalid, masked_l1
from stf_bench.models.blocks.msssim import ssim
from stf_bench.models.blocks.patchgan import section6_patchgan

GAN_MODES = ("lsgan", "lsgan_sigmoid", "wgan_clip", "bce")


class ResBlock(nn.Module):
    """x + Conv3x3(LeakyReLU(Conv3x3(x)))."""

    def __init__(self, ch: int, slope: float):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(slope), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """Per level: Conv3x3 (stride 2 from level 2 on) + ResBlock; returns the feature of every level."""

    def __init__(self, widths: tuple[int, ...], slope: float):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, stride=1 if i == 0 else 2, padding=1), ResBlock(cout, slope))
            for i, (cin, cout) in enumerate(zip((1, *widths[:-1]), widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Content normalized per sample and channel, rescaled to the style's spatial mean and std."""
    c_mean, c_std = content.mean((2, 3), keepdim=True), (content.var((2, 3), keepdim=True) + eps).sqrt()
    s_mean, s_std = style.mean((2, 3), keepdim=True), (style.var((2, 3), keepdim=True) + eps).sqrt()
    return (content - c_mean) / c_std * s_std + s_mean


class Fusion(nn.Module):
    """fused = AdaIN(F1_k, C2_k) + sigmoid(Conv3x3([delta, A] -> 1)) * Conv1x1(delta), delta = C2_k - C1_k."""

    def __init__(self, ch: int):
        super().__init__()
        self.gate = nn.Conv2d(2 * ch, 1, 3, padding=1)
        self.change = nn.Conv2d(ch, ch, 1)

    def forward(self, fine: torch.Tensor, coarse_ref: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
        delta = coarse_tgt - coarse_ref
        a = adain(fine, coarse_tgt)
        return a + torch.sigmoid(self.gate(torch.cat([delta, a], 1))) * self.change(delta)


class DecoderLevel(nn.Module):
    """ConvTranspose4x4 s2 (C_in -> C) -> cat(fused) -> Conv1x1 (2C -> C) -> ResBlock."""

    def __init__(self, cin: int, cout: int, slope: float):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.merge = nn.Conv2d(2 * cout, cout, 1)
        self.res = ResBlock(cout, slope)

    def forward(self, x: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        return self.res(self.merge(torch.cat([self.up(x), fused], 1)))


def spectral_patchgan(in_ch: int = 2) -> nn.Sequential:
    """The §6 PatchGAN with spectral norm on every conv and no BatchNorm (2,763,713 parameters on 2 inputs)."""
    layers = [spectral_norm(m) if isinstance(m, nn.Conv2d) else m
              for m in section6_patchgan(in_ch) if not isinstance(m, nn.BatchNorm2d)]
    return nn.Sequential(*layers)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter, radius 3 sigma, replicate padding."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))


class CGMFNLST(nn.Module):
    """Conditional GAN for LST; reads ``fine_ref``, ``coarse_ref``, ``coarse_tgt``."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), negative_slope: float = 0.2,
                 l1_weight: float = 1.0, ssim_weight: float = 1.0, coarse_weight: float = 0.5,
                 coarse_factor: int = 32, data_range: float = 1.0, gaussian_sigma: float = 0.0,
                 adv_weight: float = 0.02, gan_mode: str = "lsgan"):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"cgmfn_lst: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if gaussian_sigma < 0:
            raise ConfigError(f"cgmfn_lst: model.net.gaussian_sigma={gaussian_sigma} must be >= 0 (0 = no filter)")
        widths = tuple(int(w) for w in widths)
        self.l1_weight, self.ssim_weight, self.coarse_weight = l1_weight, ssim_weight, coarse_weight
        self.coarse_factor, self.data_range, self.gaussian_sigma = int(coarse_factor), data_range, gaussian_sigma
        self.adv_weight, self.gan_mode = adv_weight, gan_mode
        self.norm = None  # set by the training core; no Kelvin quantity is needed
        self.fine_encoder = Encoder(widths, negative_slope)
        self.coarse_encoder = Encoder(widths, negative_slope)
        self.fusion = nn.ModuleList(Fusion(w) for w in widths)
        self.decoder = nn.ModuleList(DecoderLevel(widths[i + 1], widths[i], negative_slope)
                                     for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.discriminator = spectral_patchgan(2)

    def forward(self, batch: dict) -> torch.Tensor:
        f1 = batch["fine_ref"]
        fine = self.fine_encoder(f1)
        # one pass of the shared coarse encoder over C1 and C2 (batch-stacked)
        coarse = self.coarse_encoder(torch.cat([batch["coarse_ref"], batch["coarse_tgt"]], 0))
        fused = [fuse(f, *c.chunk(2, 0)) for fuse, f, c in zip(self.fusion, fine, coarse)]
        x = fused[-1]
        for level, skip in zip(self.decoder, reversed(fused[:-1])):
            x = level(x, skip)
        residual = self.head(x)
        if self.gaussian_sigma > 0:
            residual = gaussian_blur(residual, self.gaussian_sigma)
        return f1 + residual

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """The discriminator judges the image given C2."""
        return torch.cat([image, batch["coarse_tgt"]], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L1 + (1 - SSIM) + coarse_weight * L1 of the change at the MODIS scale (the module adds the GAN term)."""
        if pred is None:
            pred = self(batch)
        valid = batch["valid_tgt"].bool()
        l1 = masked_l1(pred, batch["fine_tgt"], valid)
        structure = 1 - ssim(pred, fill_invalid(batch["fine_tgt"], valid, pred), self.data_range)
        coarse = self.coarse_change_l1(pred, batch)
        loss = self.l1_weight * l1 + self.ssim_weight * structure + self.coarse_weight * coarse
        return {"loss": loss, "l1": l1.detach(), "ssim": structure.detach(), "coarse": coarse.detach()}

    def coarse_change_l1(self, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        """L1(A_r(pred - F1), A_r(C2 - C1)): the predicted change against MODIS's change, block by block.

        Its target is the coarse change, not F2, so every pixel counts (the coarse images are complete)."""
        r = self.coarse_factor
        modis_change = coarse_pool(batch["coarse_tgt"] - batch["coarse_ref"], r)
        return F.l1_loss(coarse_pool(pred - batch["fine_ref"], r), modis_change)
