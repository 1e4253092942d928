"""MLFF-GAN (Song et al., IEEE TGRS 60, 4410816, 2022, doi 10.1109/TGRS.2022.3169916): multilevel feature fusion
of C1, F1 and C2 with AdaIN and change masks, trained against the §6 PatchGAN (models.md part 2 §6).

Label: official-code. Read from GitHub songbingze/MLFF-GAN @2ad585a (`model.py`: FeatureExtract,
SignificanceExtraction, adaptive_instance_normalization, CombinFeatureGenerator, NLayerDiscriminator, GANLoss;
`experiment.py`: the training step and loss; `run.py`: defaults; `data.py`: the input order C1, F1, C2, F2).
Fidelity (/work/scratch/mlffgan/fidelity.py, one band, official weights copied into ours by state-dict order, 64x64
inputs in [-0.2, 1.2]): generator max abs difference 0.0 in eval mode and 0.0 in train mode (same seed, so the same
dropout masks; BatchNorm on batch statistics); discriminator 0.0 (the official getIntermFeat=True map, ``[-1]``).
Parameters: G 5,917,360 (= models.md), D 2,765,505.

Deviations (all from models.md §6 and part 2 §0):
- one band: the D input is cat(image, C2) with 2 channels (official: hard-coded 12); the channel-cosine term has
  weight 0 (a positive weight with one band is a config error); the unused VGG loss is left out;
- loss terms against F2 are masked: L1 over observed pixels; MS-SSIM on the target whose unobserved pixels are
  replaced by the detached prediction (`fill_invalid`); MS-SSIM gets the data range explicitly;
- the official loader's coarse re-degradation (x1/16 nearest then x16 bicubic) is not applied: our coarse images
  are already MODIS; its p = 0.5 swap of the t1/t2 roles is a data-side augmentation that the datamodule does not
  offer, so it is not reproduced;
- the generator term 1e-2 * MSE(D(G), 1) becomes adv_weight 2e-2 under the adversarial module's lsgan (which
  halves it); the G step re-runs the generator (``regenerate_for_g``) as the official loop does.
The smallest input side is 32 (reflection padding at level 5 needs 2x2 features); size_multiple is 16.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import fill_invalid, masked_l1, masked_mean
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.patchgan import section6_patchgan

WIDTHS = (16, 32, 64, 128, 256)
GAN_MODES = ("lsgan", "lsgan_sigmoid")


class ResBlock(nn.Module):
    """x + [reflect-pad 3x3 conv -> dropout 0.5 -> LeakyReLU 0.01 -> reflect-pad 3x3 conv -> dropout 0.5]."""

    def __init__(self, ch: int, dropout: float = 0.5):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.Dropout(dropout), nn.LeakyReLU(0.01),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """Five levels: 7x7 conv (zero pad 3) + ResBlock at full size, then 3x3 stride-2 conv + ResBlock (no
    activation after the convs), widths 16..256 down to 1/16."""

    def __init__(self, in_ch: int):
        super().__init__()
        chans = (in_ch, *WIDTHS)
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 7, padding=3) if i == 0 else nn.Conv2d(cin, cout, 3, 2, 1),
                          ResBlock(cout))
            for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalization: content re-scaled to the style's per-channel mean and (unbiased) std."""
    def stats(t):
        flat = t.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]
    c_mean, c_std = stats(content)
    s_mean, s_std = stats(style)
    return (content - c_mean) / c_std * s_std + s_mean


class LevelFusion(nn.Module):
    """fused = C2_k * M + AdaIN(F1_k, C2_k) * (1 - M), M = sigmoid(BN(1x1(BN(1x1 C2_k) - BN(1x1 C1_k)))): where the
    coarse images changed, the coarse target's features win; elsewhere the fine reference's, restyled to C2."""

    def __init__(self, ch: int):
        super().__init__()
        self.proj_tgt = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch))
        self.proj_ref = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch))
        self.mask = nn.Sequential(nn.Conv2d(ch, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, c1: torch.Tensor, c2: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
        m = self.mask(self.proj_tgt(c2) - self.proj_ref(c1))
        return c2 * m + adain(f1, c2) * (1 - m)


def _up(cin: int, cout: int) -> nn.Sequential:
    """ConvTranspose 4x4 stride 2 pad 1 + LeakyReLU 0.01, then a ResBlock."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.01), ResBlock(cout))


class Generator(nn.Module):
    """Coarse encoder shared by C1 and C2, fine encoder for F1, per-level fusion, U-Net-like decoder."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        w = WIDTHS
        self.coarse_encoder = Encoder(in_ch)
        self.fine_encoder = Encoder(in_ch)
        self.fusions = nn.ModuleList(LevelFusion(c) for c in w)
        # cat(fused_5, C2_5) -> 128 at 1/8; then cat(fused_k, up) at each level
        self.ups = nn.ModuleList([_up(2 * w[4], w[3]), _up(2 * w[3], w[2]), _up(2 * w[2], w[1]), _up(2 * w[1], w[0])])
        self.head = nn.Sequential(ResBlock(2 * w[0]), nn.Conv2d(2 * w[0], w[0], 1), ResBlock(w[0]),
                                  nn.Conv2d(w[0], in_ch, 1))

    def forward(self, c1: torch.Tensor, f1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        c2_feats, c1_feats, f1_feats = self.coarse_encoder(c2), self.coarse_encoder(c1), self.fine_encoder(f1)
        fused = [fuse(a, b, f) for fuse, a, b, f in zip(self.fusions, c1_feats, c2_feats, f1_feats)]
        x = self.ups[0](torch.cat([fused[4], c2_feats[4]], 1))
        for up, skip in zip(self.ups[1:], fused[3:0:-1]):
            x = up(torch.cat([skip, x], 1))
        return self.head(torch.cat([fused[0], x], 1))


class MLFFGAN(nn.Module):
    """G(C1, F1, C2) and the §6 PatchGAN on cat(image, C2).

    Args (YAML ``net``): ``in_ch``; ``data_range`` of MS-SSIM (1 under min-max); loss weights ``l1_weight``,
    ``ssim_weight``, ``cosine_weight`` (channel cosine; must be 0 with one band); ``adv_weight`` and ``gan_mode``
    for the adversarial module.
    """

    def __init__(self, in_ch: int = 1, data_range: float = 1.0, l1_weight: float = 1.0, ssim_weight: float = 1.0,
                 cosine_weight: float = 0.0, adv_weight: float = 2e-2, gan_mode: str = "lsgan"):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"mlffgan: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if cosine_weight > 0 and in_ch == 1:
            raise ConfigError(f"mlffgan: model.net.cosine_weight={cosine_weight} with in_ch=1; a channel cosine is "
                              "constant for one band, set cosine_weight: 0.0")
        self.in_ch, self.data_range = in_ch, data_range
        self.l1_weight, self.ssim_weight, self.cosine_weight = l1_weight, ssim_weight, cosine_weight
        self.adv_weight, self.gan_mode = adv_weight, gan_mode
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.generator = Generator(in_ch)
        self.discriminator = section6_patchgan(2 * in_ch)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generator(batch["coarse_ref"], batch["fine_ref"], batch["coarse_tgt"])

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """cat(image, C2), as the official loop."""
        return torch.cat([image, batch["coarse_tgt"]], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """Raw PatchGAN scores (B, 1, h, w); 35x35 at 256 px."""
        return self.discriminator(x)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """l1_weight * L1 + ssim_weight * (1 - MS-SSIM) [+ cosine_weight * (1 - channel cosine)]; the adversarial
        module adds adv_weight times the GAN term."""
        if pred is None:
            pred = self(batch)
        valid = batch["valid_tgt"].bool()
        target = fill_invalid(batch["fine_tgt"], valid, pred)
        l1 = masked_l1(pred, batch["fine_tgt"], valid)
        visual = 1 - ms_ssim(pred, target, self.data_range, variant="product")
        loss = self.l1_weight * l1 + self.ssim_weight * visual
        terms = {"l1": l1.detach(), "visual": visual.detach()}
        if self.cosine_weight > 0:
            cosine = 1 - masked_mean(F.cosine_similarity(pred, target, dim=1)[:, None], valid.all(1, keepdim=True))
            loss = loss + self.cosine_weight * cosine
            terms["cosine"] = cosine.detach()
        return {"loss": loss, **terms}
