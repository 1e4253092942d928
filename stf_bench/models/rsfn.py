"""RSFN (Tan, Gao, Yuan, Jiang, Duan, 2022): a robust MODIS-Landsat fusion GAN that weights two fine references by
learned attention maps, so that noise or clouds in one reference are down-weighted.

Paper: "A Robust Model for MODIS and Landsat Image Fusion Considering Input Noise", IEEE TGRS 60, 5407217, 2022
(https://ieeexplore.ieee.org/document/9687540). Label: official-code. Code: GitHub theonegis/rsfn (Apache-2.0) at
81c5e1e, files read: `model.py` (ResidualBlock, AutoEncoder, Generator, DResidualBlockWithSN, Discriminator,
ReconstructionLoss, compute_gradient), `experiment.py` (training step, LSGAN, 5e-3, Adam, ExponentialLR 0.99),
`ssim.py`, `data.py`, `utils.py`. Written from the code, none copied.

Fidelity (models.md part 2 §7): the official Generator, AutoEncoder and Discriminator (NUM_BANDS = 1; torchgan's
SpectralNorm2d re-created, its power iteration converged to the same singular vectors as ours) with their weights
copied into ours give max abs differences G 0.0, AE 0.0 (and its encoder 0.0), D 7.5e-8 on random 256x256 batches;
the Sobel magnitude differs by 0.0 and MS-SSIM (explicit range 1) by 1.2e-7 (`python /work/scratch/rsfn/fidelity.py`;
the parameter counts agree: G 281,855, AE 209,387, D 1,217,967).

Deliberate deviations:
- One band: the spectral-angle term is a config weight, 0 (a value above 0 with one band is a ConfigError).
- MS-SSIM gets the data range explicitly (the official code guesses it from the prediction).
- The terms compare whole patches, with unobserved target pixels replaced by the detached prediction
  (`fill_invalid`), as GAN-STFM does.
- The loader clamp to 0 and the test-time output ReLU are dropped (linear head).
- The discriminator's max-pooling uses ceil_mode: identical on sides that are multiples of 64 (the published 256),
  and a 32 px patch still reaches the sixth block (1x1 instead of an empty map).
- Spectral norm is torch's parametrization (one power iteration per training call) instead of torchgan's
  SpectralNorm2d, whose u and v are not counted as parameters here either.
- The feature autoencoder is retrained on LST (the repository ships 6-band weights and no recipe): models.md §5.4's
  recipe with the loss L1 + 0.8 (1 - MS-SSIM).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import fill_invalid
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.pretrained import (
    FeatureLossModel,
    FrozenEncoder,
    piece_block,
)
from stf_bench.models.blocks.sobel import sobel_mse

GAN_MODES = ("lsgan", "lsgan_sigmoid")


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class RB(nn.Module):
    """The official residual block: trunk [pad + 3x3 (stride 2 for "down") -> LeakyReLU -> 1x1] plus a 1x1 lateral
    bilinearly resized to the trunk's size; "up" doubles the input bilinearly first. `norm` adds InstanceNorm after
    the 3x3 and at the end of both branches."""

    def __init__(self, cin: int, cout: int, sampling: str | None = None, norm: bool = False):
        super().__init__()
        mid = min(cin, cout)
        self.up = sampling == "up"
        conv3 = nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(cin, mid, 3, stride=2 if sampling == "down" else 1))
        trunk = [conv3, nn.LeakyReLU(), nn.Conv2d(mid, cout, 1)]
        lateral = [nn.Conv2d(cin, cout, 1)]
        if norm:
            trunk.insert(1, nn.InstanceNorm2d(mid))
            trunk.append(nn.InstanceNorm2d(cout))
            lateral.append(nn.InstanceNorm2d(cout))
        self.trunk, self.lateral = nn.Sequential(*trunk), nn.Sequential(*lateral)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        trunk, lateral = self.trunk(x), self.lateral(x)
        if lateral.shape != trunk.shape:
            lateral = _resize(lateral, trunk.shape[-2:])
        return trunk + lateral


# ----------------------------------------------------------------------------------------------------- generator
class Generator(nn.Module):
    """Fine encoder (shared by F1, F3; to 64 ch at 2H), coarse encoder (C2; 64 ch at H), attention net on [F_k, C2]
    (H/8 and back to 2H, sigmoid), merge Enc(F1) A1 + Enc(F3) A3 -> down RB, decoder on cat(merge, Enc(C2))."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.fine_encoder = nn.Sequential(RB(in_ch, 16), RB(16, 32), RB(32, 64, "up"))
        self.coarse_encoder = nn.Sequential(RB(in_ch, 16), RB(16, 32), RB(32, 64))
        widths = (2 * in_ch, 16, 32, 64, 64, 32, 16, 1)
        self.attention = nn.Sequential(
            *(RB(a, b, "down" if i < 3 else "up", norm=True) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))),
            nn.Sigmoid(),
        )
        self.merge = RB(64, 64, "down")
        self.decoder = nn.Sequential(RB(128, 64), RB(64, 32), RB(32, 16), nn.Conv2d(16, in_ch, 1))

    def forward(self, fine_1: torch.Tensor, fine_3: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        enc_1, enc_3 = self.fine_encoder(fine_1), self.fine_encoder(fine_3)
        att_1 = self.attention(torch.cat([fine_1, coarse], 1))
        att_3 = self.attention(torch.cat([fine_3, coarse], 1))
        if att_1.shape[-2:] != enc_1.shape[-2:]:  # sides that are not multiples of 8
            att_1, att_3 = _resize(att_1, enc_1.shape[-2:]), _resize(att_3, enc_3.shape[-2:])
        merged = self.merge(enc_1 * att_1 + enc_3 * att_3)
        return self.decoder(torch.cat([merged, self.coarse_encoder(coarse)], 1))


# ------------------------------------------------------------------------------------------------- discriminator
class DBlock(nn.Module):
    """BN-LReLU-SN 3x3-maxpool/2-BN-LReLU-SN 1x1, plus an SN 1x1 + maxpool/2 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.path = nn.Sequential(
            nn.BatchNorm2d(cin), nn.LeakyReLU(), spectral_norm(nn.Conv2d(cin, cin, 3, padding=1)),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.BatchNorm2d(cin), nn.LeakyReLU(), spectral_norm(nn.Conv2d(cin, cout, 1)),
        )
        self.shortcut = nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 1)), nn.MaxPool2d(2, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.path(x)


class Discriminator(nn.Sequential):
    """Six down-blocks 2->64->64->128->128->256->256 and an SN 1x1 to one channel: a 4x4 score map at 256 px."""

    WIDTHS = (64, 64, 128, 128, 256, 256)

    def __init__(self, in_ch: int = 2):
        widths = (in_ch, *self.WIDTHS)
        super().__init__(*(DBlock(a, b) for a, b in zip(widths[:-1], widths[1:])),
                         spectral_norm(nn.Conv2d(widths[-1], 1, 1)))


# -------------------------------------------------------------------------------------- frozen feature autoencoder
class FeatureEncoder(nn.Module):
    """conv1 (->16) and three down RBs to 128 channels at H/8: the loss network E."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.conv1 = RB(in_ch, 16)
        self.conv2 = RB(16, 32, "down")
        self.conv3 = RB(32, 64, "down")
        self.conv4 = RB(64, 128, "down")

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [self.conv1(x)]
        for conv in (self.conv2, self.conv3, self.conv4):
            levels.append(conv(levels[-1]))
        return levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pyramid(x)[-1]


class FeatureAutoencoder(nn.Module):
    """E plus an up path of RBs concatenating E's levels (209,387 parameters for one band)."""

    size_multiple = 8  # three down levels must upsample back onto the skip connections

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.encoder = FeatureEncoder(in_ch)
        self.conv5 = RB(128, 64, "up")
        self.conv6 = RB(128, 32, "up")
        self.conv7 = RB(64, 16, "up")
        self.conv8 = nn.Conv2d(32, in_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2, l3, l4 = self.encoder.pyramid(x)
        l6 = self.conv6(torch.cat([l3, self.conv5(l4)], 1))
        l7 = self.conv7(torch.cat([l2, l6], 1))
        return self.conv8(torch.cat([l1, l7], 1))


def autoencoder_loss(recon: torch.Tensor, x: torch.Tensor, *, ssim_weight: float, data_range: float) -> torch.Tensor:
    """L1 + w * (1 - MS-SSIM, product variant) (models.md §7; the repository has no recipe)."""
    return F.l1_loss(recon, x) + ssim_weight * (1 - ms_ssim(recon, x, data_range, variant="product"))


# --------------------------------------------------------------------------------------------------------- model
class RSFN(FeatureLossModel, nn.Module):
    """Generator G(F1, F3, C2), conditional SN discriminator on cat(image, C2), frozen feature encoder E.

    The trainable inference network is `generator`; `discriminator` and `feature_encoder` (the YAML block
    {ckpt, ssim_weight, recipe} of E's autoencoder) are training-only.
    """

    autoencoder_cls = FeatureAutoencoder
    autoencoder_loss = staticmethod(autoencoder_loss)

    def __init__(
        self,
        feature_encoder: Mapping,
        in_ch: int = 1,
        data_range: float = 1.0,
        adv_weight: float = 5e-3,
        gan_mode: str = "lsgan",
        spectral_weight: float = 0.0,
    ):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"rsfn: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if spectral_weight and in_ch == 1:
            raise ConfigError(f"rsfn: model.net.spectral_weight={spectral_weight} with one band; the spectral angle "
                              f"of a single band carries no information, set it to 0")
        self.in_ch, self.data_range = in_ch, data_range
        self.adv_weight, self.gan_mode, self.spectral_weight = adv_weight, gan_mode, spectral_weight
        self.piece = piece_block(feature_encoder, ("ckpt", "ssim_weight", "recipe"), f"rsfn {self.PIECE}")
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.generator = Generator(in_ch)
        self.discriminator = Discriminator(2 * in_ch)
        self.feature_encoder = FrozenEncoder(FeatureEncoder(in_ch), f"rsfn {self.PIECE}")

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generator(batch["fine_ref"], batch["fine_ref2"], batch["coarse_tgt"])

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """The discriminator is conditioned on C2."""
        return torch.cat([image, batch["coarse_tgt"]], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, positions) scores: the official LSGAN averages every position of the 4x4 map."""
        return self.discriminator(x).flatten(1)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Sobel-magnitude MSE + feature MSE + (1 - MS-SSIM) [+ spectral angle]; the module adds 5e-3 LSGAN.

        Unobserved target pixels are replaced by the detached prediction (`fill_invalid`), so they add no error.
        """
        if pred is None:
            pred = self(batch)
        target = fill_invalid(batch["fine_tgt"], batch["valid_tgt"].bool(), pred)
        sobel = sobel_mse(pred, batch["fine_tgt"], batch["valid_tgt"])
        feature = F.mse_loss(self.feature_encoder(pred), self.feature_encoder(target))
        visual = 1 - ms_ssim(pred, target, self.data_range, variant="product")
        terms = {"sobel": sobel, "feature": feature, "visual": visual}
        if self.spectral_weight:
            cosine = F.cosine_similarity(pred, target, dim=1).clamp(-1 + 1e-6, 1 - 1e-6)
            terms["spectral"] = self.spectral_weight * torch.acos(cosine).mean()
        return {"loss": sum(terms.values()), **{k: v.detach() for k, v in terms.items()}}
