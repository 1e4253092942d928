"""GAN-STFM (Tan et al., 2022): a reference-insensitive conditional GAN that fuses C2 with a fine image of any date.

Read from GitHub theonegis/ganstfm at 0336788 (`model.py`, `normalization.py`, `experiment.py`, `ssim.py`) and its
branch `autoencoder`. The generator works at full resolution and never resamples, so it takes any patch size; the
discriminator is the fixed three-scale version of 0336788 (each head has its own weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import fill_invalid
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.pretrained import FeatureLossModel, FrozenEncoder, piece_block
from stf_bench.models.blocks.switchnorm import SwitchNorm2d

WIDTHS = (16, 32, 64, 128)
GAN_MODES = ("lsgan", "lsgan_sigmoid", "wgan_clip")
D_REDUCES = ("batch", "sample")


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride))


# ----------------------------------------------------------------------------------------------------- generator
class EncoderBlock(nn.Module):
    """(lateral, fused) -> (lateral', trunk(fused) + lateral'): the coarse stream feeds every trunk stage."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = min(cin, cout)
        self.lateral = nn.Sequential(_conv3x3(cin, mid), nn.Conv2d(mid, cout, 1), nn.LeakyReLU())
        self.trunk = nn.Sequential(
            SwitchNorm2d(cin), nn.LeakyReLU(), _conv3x3(cin, mid),
            SwitchNorm2d(mid), nn.LeakyReLU(), nn.Conv2d(mid, cout, 1),
        )

    def forward(self, lateral: torch.Tensor, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lateral = self.lateral(lateral)
        return lateral, self.trunk(fused) + lateral


class DecoderBlock(nn.Module):
    """[3x3 -> LeakyReLU -> 1x1] + 1x1 shortcut, no activation after the sum."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = min(cin, cout)
        self.residual = nn.Sequential(_conv3x3(cin, mid), nn.LeakyReLU(), nn.Conv2d(mid, cout, 1))
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class Generator(nn.Module):
    """Two-stream encoder (C2 lateral, F1 trunk) 1->16->32->64->128, decoder 256->128->64->32->16, linear 1x1 head."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.encoder = nn.ModuleList(EncoderBlock(a, b) for a, b in zip((in_ch, *WIDTHS[:-1]), WIDTHS))
        dec = (2 * WIDTHS[-1], *WIDTHS[::-1])
        self.decoder = nn.Sequential(*(DecoderBlock(a, b) for a, b in zip(dec[:-1], dec[1:])))
        self.head = nn.Conv2d(WIDTHS[0], in_ch, 1)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        lateral, fused = coarse, fine
        for block in self.encoder:
            lateral, fused = block(lateral, fused)
        return self.head(self.decoder(torch.cat([lateral, fused], 1)))


# ------------------------------------------------------------------------------------------------- discriminator
class DownBlock(nn.Module):
    """BN-LReLU-SN conv3x3/2 (in->in)-BN-LReLU-SN conv1x1 (in->out), plus an SN conv1x1/2 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.path = nn.Sequential(
            nn.BatchNorm2d(cin), nn.LeakyReLU(), spectral_norm(nn.Conv2d(cin, cin, 3, stride=2, padding=1)),
            nn.BatchNorm2d(cin), nn.LeakyReLU(), spectral_norm(nn.Conv2d(cin, cout, 1)),
        )
        self.shortcut = spectral_norm(nn.Conv2d(cin, cout, 1, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.path(x) + self.shortcut(x)


class DiscriminatorHead(nn.Sequential):
    """A chain of down-blocks ending in an SN 1x1 conv to one channel; returns (B, positions) scores."""

    def __init__(self, widths: tuple[int, ...]):
        blocks = [DownBlock(a, b) for a, b in zip(widths[:-1], widths[1:])]
        super().__init__(*blocks, spectral_norm(nn.Conv2d(widths[-1], 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).flatten(1)


class MultiScaleDiscriminator(nn.Module):
    """Three heads on the input at scales 1, 1/2, 1/4 (nearest); each reaches one score per sample on 256 px."""

    SCALES = (1.0, 0.5, 0.25)
    HEADS = (
        (32, 32, 64, 64, 128, 128, 256, 256),
        (32, 64, 64, 128, 128, 256, 256),
        (32, 64, 128, 128, 256, 256),
    )

    def __init__(self, in_ch: int):
        super().__init__()
        self.d1, self.d2, self.d3 = (DiscriminatorHead((in_ch, *w)) for w in self.HEADS)

    def heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-head scores, each (B, positions)."""
        return [d(x if s == 1 else F.interpolate(x, scale_factor=s)) for d, s in zip((self.d1, self.d2, self.d3),
                                                                                     self.SCALES)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) per-sample score: the mean over heads of each head's mean over positions. When the heads have equal
        lengths (256, 128, 320, 512 px, ...) this is the official mean of the stacked heads."""
        return torch.stack([h.mean(1) for h in self.heads(x)]).mean(0)


# -------------------------------------------------------------------------------------- frozen feature autoencoder
def _ae_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv3x3(cin, cout, stride), nn.LeakyReLU())


class FeatureEncoder(nn.Module):
    """E: conv1 (->16) then three stride-2 blocks to 128 channels at H/8 (97,152 parameters for one band)."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.conv1 = _ae_block(in_ch, 16)
        self.conv2 = _ae_block(16, 32, 2)
        self.conv3 = _ae_block(32, 64, 2)
        self.conv4 = _ae_block(64, 128, 2)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four levels, finest first (the autoencoder's skip connections)."""
        levels = [self.conv1(x)]
        for conv in (self.conv2, self.conv3, self.conv4):
            levels.append(conv(levels[-1]))
        return levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pyramid(x)[-1]


class FeatureAutoencoder(nn.Module):
    """E plus a U-Net decoder (nearest x2 + conv, concatenating E's levels), trained to reconstruct LST patches."""

    size_multiple = 8  # three stride-2 levels must upsample back onto the skip connections

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.encoder = FeatureEncoder(in_ch)
        self.conv5 = _ae_block(128, 64)
        self.conv6 = _ae_block(128, 32)
        self.conv7 = _ae_block(64, 16)
        self.conv8 = nn.Conv2d(32, in_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2, l3, l4 = self.encoder.pyramid(x)
        up = partial(F.interpolate, scale_factor=2, mode="nearest")
        l5 = self.conv5(up(l4))
        l6 = self.conv6(up(torch.cat([l3, l5], 1)))
        l7 = self.conv7(up(torch.cat([l2, l6], 1)))
        return self.conv8(torch.cat([l1, l7], 1))


def autoencoder_loss(recon: torch.Tensor, x: torch.Tensor, *, ssim_weight: float, data_range: float) -> torch.Tensor:
    """SmoothL1 + w * (1 - MS-SSIM, product variant), the `autoencoder` branch's loss."""
    return F.smooth_l1_loss(recon, x) + ssim_weight * (1 - ms_ssim(recon, x, data_range, variant="product"))


# --------------------------------------------------------------------------------------------------------- model
class GANSTFM(FeatureLossModel, nn.Module):
    """Generator G(C2, F1), conditional multi-scale discriminator, frozen feature encoder E for the loss.

    Reads only `fine_ref` and `coarse_tgt` (C1 is not used: the reference may be any date). The trainable inference
    network is `generator`; `discriminator` and `feature_encoder` are training-only. `feature_encoder` is the YAML
    block {ckpt, ssim_weight, recipe} of E's autoencoder.
    """

    autoencoder_cls = FeatureAutoencoder
    autoencoder_loss = staticmethod(autoencoder_loss)

    def __init__(
        self,
        feature_encoder: Mapping,
        in_ch: int = 1,
        data_range: float = 1.0,
        adv_weight: float = 1e-3,
        gan_mode: str = "lsgan",
        d_reduce: str = "batch",
    ):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"ganstfm: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if d_reduce not in D_REDUCES:
            raise ConfigError(f"ganstfm: model.net.d_reduce={d_reduce!r} is not one of {D_REDUCES}")
        self.in_ch, self.data_range = in_ch, data_range
        self.adv_weight, self.gan_mode, self.d_reduce = adv_weight, gan_mode, d_reduce
        self.piece = piece_block(feature_encoder, ("ckpt", "ssim_weight", "recipe"), f"ganstfm {self.PIECE}")
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.generator = Generator(in_ch)
        self.discriminator = MultiScaleDiscriminator(2 * in_ch)
        self.feature_encoder = FrozenEncoder(FeatureEncoder(in_ch), f"ganstfm {self.PIECE}")

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generator(batch["coarse_tgt"], batch["fine_ref"])

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """The discriminator is conditioned on C2."""
        return torch.cat([image, batch["coarse_tgt"]], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of `d_input` tensors: one scalar (`d_reduce: batch`, official) or one per sample (`sample`)."""
        scores = self.discriminator(x)
        return scores.mean() if self.d_reduce == "batch" else scores

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L_feat + L_cos + L_vis of the generator (no pixel term; the adversarial module adds the GAN term).

        The terms compare whole patches, so unobserved target pixels are replaced by the detached prediction before
        encoding (`fill_invalid`): they then add no error, while the feature maps keep their spatial context.
        """
        if pred is None:
            pred = self(batch)
        target = fill_invalid(batch["fine_tgt"], batch["valid_tgt"].bool(), pred)
        e_pred, e_target = self.feature_encoder(pred), self.feature_encoder(target)
        feature = F.mse_loss(e_pred, e_target)
        cosine = 1 - F.cosine_similarity(e_pred, e_target, dim=1, eps=1e-8).mean()
        visual = 1 - ms_ssim(pred, target, self.data_range, variant="product")
        return {"loss": feature + cosine + visual, "feature": feature.detach(), "cosine": cosine.detach(),
                "visual": visual.detach()}
