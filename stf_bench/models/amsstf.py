"""AMS-STF ("An Adaptive Multiscale Generative Adversarial Network for the Spatiotemporal Fusion of Landsat and
MODIS Data", Remote Sens. 15(21), 5128, 2023, doi 10.3390/rs15215128): two reference pairs, per-level temporal
attention on the fine features and a modulated deformable convolution whose masks come from the coarse changes,
an FPN decoder, trained against the §6 PatchGAN (models.md part 2 §8).

Label: official-code. Read from GitHub xxsfish/AMS-STF @f62125b (`model.py`: ExtractFeatureModule, TAM,
TemporalBottleneck, TANet, OffsetAttentionModule, MaskEstimatorModule, AmsStfLevel, AmsStf, compute_gradient,
ReconstructionLoss, NLayerDiscriminator; `experiment.py`: training step and optimizers; `run.py`: defaults;
`dataset.py`: the input order C1, F1, C3, F3, C2, F2).
Fidelity (/work/scratch/amsstf/fidelity.py, one band, official weights copied into ours by state-dict order with the
dead CBAM left out, 64x64 inputs in [-0.2, 1.2], batch 1; the official deform_conv2d served by a transcription of
torchvision's CPU kernel because torchvision is not installed; offsets of up to 2 px): generator max abs difference
6.0e-07 in eval mode and 3.0e-06 in train mode (batch statistics, dropout 0.1 with the same seed) on outputs up to
2.0; discriminator 0.0; Sobel loss vs the official `compute_gradient` + MSE 0.0. Parameters: G 2,985,640 (official
2,988,863 with the never-called CBAM: -0.11 %), D 2,765,505.

The official discriminator is built with ``use_sigmoid=True`` but ``getIntermFeat=True``, whose forward runs only the
first n_layers + 2 = 5 groups: the sixth, the sigmoid, is never applied, so the losses see raw scores. The code wins
over models.md §8 ("PatchGAN plus a sigmoid", lsgan_sigmoid): ``gan_mode: lsgan``; ``lsgan_sigmoid`` remains available.

Deviations (models.md §8 and part 2 §0):
- temporal attention stacks F1 and F3 features as T = 2 *per sample*; the official `cat(dim=0)` + `view(n, t, ...)`
  pairs different samples when the batch is larger than 1 (identical for batch 1);
- the modulated deformable conv is `blocks/deform.py` (grid_sample) instead of torchvision's;
- the CBAM modules (CAM, SAM) are built but never called in the official code: left out;
- one band: D input cat(image, C2) with 2 channels; the arccos spectral term has weight 0 (positive with one band
  is a config error);
- terms against F2 are masked: L1 over observed pixels; MS-SSIM and the Sobel term on the target whose unobserved
  pixels are replaced by the detached prediction, the Sobel errors averaged over observed pixels;
- the generator term 1e-2 * MSE(D(G), 1) becomes adv_weight 2e-2 under the module's halved lsgan.
With one reference pair (pairing previous / nearest) the pair is passed twice, as models.md says.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.deform import modulated_deform_conv2d
from stf_bench.models.blocks.masked import fill_invalid, masked_l1, masked_mean
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.patchgan import section6_patchgan
from stf_bench.models.blocks.sobel import sobel_mse

WIDTHS = (32, 64, 128)
GAN_MODES = ("lsgan", "lsgan_sigmoid")


def conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Reflection-padded conv + BatchNorm (+ LeakyReLU 0.01)."""
    layers = [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.LeakyReLU(0.01)) if act else nn.Sequential(*layers)


class ResidualConv(nn.Module):
    """x + reflection-padded 3x3 conv (no normalization, no activation)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class Encoder(nn.Module):
    """Three levels (1, 1/2, 1/4): conv-BN-LeakyReLU (stride 2 after level 0) + two residual 3x3 convs."""

    def __init__(self, in_ch: int):
        super().__init__()
        chans = (in_ch, *WIDTHS)
        self.levels = nn.ModuleList(
            nn.Sequential(conv_bn_act(cin, cout, stride=1 if i == 0 else 2), ResidualConv(cout), ResidualConv(cout))
            for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


class TemporalAdaptiveModule(nn.Module):
    """TAM (TANet): frames gated per channel and time by a local branch, then convolved along time with a kernel
    that a global branch predicts per sample and channel. Input (B*T, C, H, W) with each sample's T frames
    consecutive, so that no operation mixes samples."""

    def __init__(self, ch: int, t: int, k: int = 3):
        super().__init__()
        self.t, self.k = t, k
        self.global_branch = nn.Sequential(
            nn.Linear(t, 2 * t, bias=False), nn.BatchNorm1d(2 * t), nn.ReLU(),
            nn.Linear(2 * t, k, bias=False), nn.Softmax(-1))
        self.local_branch = nn.Sequential(
            nn.Conv1d(ch, ch // 4, k, padding=k // 2, bias=False), nn.BatchNorm1d(ch // 4), nn.ReLU(),
            nn.Conv1d(ch // 4, ch, 1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        b, t = bt // self.t, self.t
        frames = x.view(b, t, c, h, w)
        pooled = frames.mean((3, 4)).transpose(1, 2)  # (B, C, T)
        kernel = self.global_branch(pooled.reshape(b * c, t))  # (B*C, k)
        gate = self.local_branch(pooled)  # (B, C, T)
        seq = (frames * gate.transpose(1, 2)[..., None, None]).transpose(1, 2).reshape(1, b * c, t, h * w)
        out = F.conv2d(seq, kernel.view(b * c, 1, self.k, 1), padding=(self.k // 2, 0), groups=b * c)
        return out.view(b, c, t, h, w).transpose(1, 2).reshape(bt, c, h, w)


class TemporalBottleneck(nn.Module):
    """x -> LeakyReLU(x + BN(1x1(conv-BN-act 3x3(TAM(conv-BN-act 1x1(x))))))."""

    def __init__(self, ch: int, t: int = 2):
        super().__init__()
        self.reduce = conv_bn_act(ch, ch, k=1)
        self.spatial = conv_bn_act(ch, ch, k=3)
        self.expand = conv_bn_act(ch, ch, k=1, act=False)
        self.tam = TemporalAdaptiveModule(ch, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.expand(self.spatial(self.tam(self.reduce(x)))), 0.01)


class TemporalAttention(nn.Module):
    """Two TemporalBottlenecks over the (F1, F3) features of each sample, plus an outer residual."""

    def __init__(self, ch: int):
        super().__init__()
        self.blocks = nn.Sequential(TemporalBottleneck(ch), TemporalBottleneck(ch))

    def forward(self, f1: torch.Tensor, f3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([f1, f3], 1).flatten(0, 1)  # (B*2, C, H, W): sample b's frames at 2b, 2b + 1
        x = (x + self.blocks(x)).unflatten(0, (f1.shape[0], 2))
        return x[:, 0], x[:, 1]


class MaskEstimator(nn.Module):
    """Nine modulation masks from a coarse change (C_ref - C2 features) and the reference's coarse features."""

    def __init__(self, ch: int, taps: int = 9):
        super().__init__()
        self.change = conv_bn_act(ch, ch)
        self.combine = conv_bn_act(2 * ch, ch)
        self.head = nn.Sequential(
            nn.Conv2d(ch, ch // 2, 3, padding=1), nn.ReLU(), nn.Conv2d(ch // 2, 2 * taps, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * taps, taps, 3, padding=1), nn.Sigmoid())

    def forward(self, change: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return self.head(self.combine(torch.cat([self.change(change), base], 1)))


class Level(nn.Module):
    """One scale: temporal attention on the fine features, one offset field from cat(F1f, F3f), a mask per
    reference, a shared deformable 3x3 conv per reference -> BN -> LeakyReLU 0.2, summed."""

    def __init__(self, ch: int):
        super().__init__()
        self.temporal = TemporalAttention(ch)
        self.offsets = nn.Sequential(
            nn.Conv2d(2 * ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch // 2, 18, 3, padding=1), nn.ReLU(), nn.Conv2d(18, 18, 3, padding=1))
        self.masks = MaskEstimator(ch)
        self.deform = nn.Conv2d(ch, ch, 3, padding=1)  # holds the deformable conv's weight and bias
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, c1, c2, c3, f1, f3):
        t1, t3 = self.temporal(f1, f3)
        offset = self.offsets(torch.cat([f1, f3], 1))
        out = 0
        for feats, coarse in ((t1, c1), (t3, c3)):
            mask = self.masks(coarse - c2, coarse)
            y = modulated_deform_conv2d(feats, offset, mask, self.deform.weight, self.deform.bias)
            out = out + F.leaky_relu(self.bn(y), 0.2)
        return out


class Generator(nn.Module):
    """Shared coarse encoder (C1, C3, C2), shared fine encoder (F1, F3), three Levels, FPN decoder, linear head."""

    def __init__(self, in_ch: int = 1, dropout: float = 0.1):
        super().__init__()
        w = WIDTHS
        self.coarse_encoder = Encoder(in_ch)
        self.fine_encoder = Encoder(in_ch)
        self.levels = nn.ModuleList(Level(c) for c in w)
        self.lateral = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 3, padding=1) for i in range(len(w) - 1))
        self.head = nn.Sequential(nn.Conv2d(w[0], 16, 3, padding=1), nn.Dropout(dropout),
                                  nn.Conv2d(16, in_ch, 3, padding=1))

    def forward(self, c1, f1, c3, f3, c2) -> torch.Tensor:
        # the official call order (C1, F1, C3, F3, C2), so that BatchNorm running statistics evolve identically
        c1, f1, c3, f3 = self.coarse_encoder(c1), self.fine_encoder(f1), self.coarse_encoder(c3), self.fine_encoder(f3)
        feats = zip(c1, self.coarse_encoder(c2), c3, f1, f3)
        outs = [level(*f) for level, f in zip(self.levels, feats)]
        x = outs[-1]
        for i in range(len(outs) - 2, -1, -1):
            x = self.lateral[i](F.interpolate(x, scale_factor=2, mode="nearest")) + outs[i]
        return self.head(x)


class AMSSTF(nn.Module):
    """G(C1, F1, C3, F3, C2) and the §6 PatchGAN on cat(image, C2).

    Args (YAML ``net``): ``in_ch``; ``data_range`` of MS-SSIM; loss weights ``l1_weight``, ``ssim_weight``,
    ``sobel_weight``, ``spectral_weight`` (arccos of the channel cosine; must be 0 with one band); ``dropout`` of
    the head; ``adv_weight`` and ``gan_mode`` for the adversarial module.
    """

    def __init__(self, in_ch: int = 1, data_range: float = 1.0, l1_weight: float = 1.0, ssim_weight: float = 1.0,
                 sobel_weight: float = 1.0, spectral_weight: float = 0.0, dropout: float = 0.1,
                 adv_weight: float = 2e-2, gan_mode: str = "lsgan"):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"amsstf: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if spectral_weight > 0 and in_ch == 1:
            raise ConfigError(f"amsstf: model.net.spectral_weight={spectral_weight} with in_ch=1; the spectral angle "
                              "is 0 for one band, set spectral_weight: 0.0")
        self.in_ch, self.data_range = in_ch, data_range
        self.l1_weight, self.ssim_weight = l1_weight, ssim_weight
        self.sobel_weight, self.spectral_weight = sobel_weight, spectral_weight
        self.adv_weight, self.gan_mode = adv_weight, gan_mode
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.generator = Generator(in_ch, dropout)
        self.discriminator = section6_patchgan(2 * in_ch)

    def forward(self, batch: dict) -> torch.Tensor:
        second = [k in batch for k in ("fine_ref2", "coarse_ref2")]
        if any(second) and not all(second):
            raise ValueError("amsstf: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        f1, c1 = batch["fine_ref"], batch["coarse_ref"]
        f3, c3 = (batch["fine_ref2"], batch["coarse_ref2"]) if all(second) else (f1, c1)  # one pair: pass it twice
        return self.generator(c1, f1, c3, f3, batch["coarse_tgt"])

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """cat(image, C2), as the official loop."""
        return torch.cat([image, batch["coarse_tgt"]], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """Raw PatchGAN scores (B, 1, h, w), as the official D returns them (its sigmoid is never reached)."""
        return self.discriminator(x)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """l1 * L1 + ssim * (1 - MS-SSIM) + sobel * MSE(Sobel magnitudes) [+ spectral * mean arccos(cosine)]; the
        adversarial module adds adv_weight times the GAN term."""
        if pred is None:
            pred = self(batch)
        valid = batch["valid_tgt"].bool()
        target = fill_invalid(batch["fine_tgt"], valid, pred)
        l1 = masked_l1(pred, batch["fine_tgt"], valid)
        visual = 1 - ms_ssim(pred, target, self.data_range, variant="product")
        sobel = sobel_mse(pred, batch["fine_tgt"], valid)
        loss = self.l1_weight * l1 + self.ssim_weight * visual + self.sobel_weight * sobel
        terms = {"l1": l1.detach(), "visual": visual.detach(), "sobel": sobel.detach()}
        if self.spectral_weight > 0:
            cos = F.cosine_similarity(pred, target, dim=1).clamp(-1 + 1e-6, 1 - 1e-6)
            spectral = masked_mean(torch.acos(cos)[:, None], valid.all(1, keepdim=True))
            loss = loss + self.spectral_weight * spectral
            terms["spectral"] = spectral.detach()
        return {"loss": loss, **terms}
