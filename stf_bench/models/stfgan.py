"""STFGAN (Zhang, Song, Han, Zhang, 2021): an SRGAN-style generator that super-resolves the three coarse images and
fuses them with the two fine references, trained as a Wasserstein GAN with weight clipping.

Paper: "Remote Sensing Image Spatiotemporal Fusion Using a Generative Adversarial Network", IEEE TGRS 59(5), 2021
(https://ieeexplore.ieee.org/document/9159647). Label: re-implementation. Layers read from the third-party code in
GitHub huang-he99/STF at 0e965e2 (no licence): `src/model/stfgan/{stfgan_generator,stfgan_discriminator,cnnblock}.py`,
`src/trainer/stfgan_trainer.py` and `config/stfgan/syy_setting-1/stage_{1,2}~RMSProp.py`. Written from the code, none
copied.

Fidelity: STFGANGenerator and STFGANDiscriminator (img_channel_num = 1) with their weights copied into ours give max abs
differences G 0.0 (before our range mapping) and D 0.0 on random 2x1x256x256 inputs, in train and eval mode
(`python /work/scratch/stfgan/fidelity.py`; counts agree: G 2,184,641, D 5,214,273).

Deliberate deviations:
- Internal range (models.md part 2 §0): inputs are mapped with `SYMMETRIC` (training span to [-0.8, 0.8]) and the
  Tanh output is mapped back; `output_activation: none` removes the Tanh. The discriminator sees images in the same
  internal range, and the MSE is taken there too, so MSE and the 1e-3 WGAN term keep the official balance.
- The coarse images arrive on the fine grid and are average-pooled by 4 (A_4); the third-party loader resizes them
  to 64x64 by nearest neighbour.
- The MSE is averaged over observed target pixels (`valid_tgt`).
- Only the single-stage code is implemented; the paper's two-stage chain (`stages: 2`) is a config error.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool
from stf_bench.models.blocks.masked import masked_mse
from stf_bench.models.blocks.ranges import SYMMETRIC

OUTPUT_ACTIVATIONS = ("tanh", "none")
GAN_MODES = ("wgan_clip", "lsgan")


class ResidualBlock(nn.Module):
    """SRGAN residual block: conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus identity."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Branch(nn.Module):
    """Conv9x9 + ReLU, n residual blocks, conv3x3 + BN, plus a long skip from the head."""

    def __init__(self, cin: int, blocks: int, width: int = 64):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(cin, width, 9, padding=4), nn.ReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.tail = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return x + self.tail(self.blocks(x))


class Generator(nn.Module):
    """Coarse branch on cat(C1, C2, C3) at H/4 (16 blocks, x4 pixel-shuffle upsampling), fine branch on cat(F1, F3)
    (8 blocks), fusion Conv9x9 (128 -> bands). Returns the pre-activation output (the caller applies Tanh)."""

    def __init__(self, in_ch: int = 1, width: int = 64):
        super().__init__()
        self.coarse = Branch(3 * in_ch, 16, width)
        self.upsample = nn.Sequential(*(layer for _ in range(2) for layer in (
            nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.ReLU())))
        self.fine = Branch(2 * in_ch, 8, width)
        self.fusion = nn.Conv2d(2 * width, in_ch, 9, padding=4)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([self.upsample(self.coarse(coarse)), self.fine(fine)], 1))


class Discriminator(nn.Sequential):
    """Unconditional: conv3x3 (->64) + LReLU 0.2; conv3x3 + BN + LReLU 0.2 at 64/2, 128, 128/2, 256, 256/2, 512,
    512/2; global average pooling; 1x1 (512 -> 1024) + LReLU 0.2; 1x1 (-> 1)."""

    STAGES = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))

    def __init__(self, in_ch: int = 1):
        layers = [nn.Conv2d(in_ch, 64, 3, padding=1), nn.LeakyReLU(0.2)]
        cin = 64
        for cout, stride in self.STAGES:
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(512, 1024, 1), nn.LeakyReLU(0.2), nn.Conv2d(1024, 1, 1)]
        super().__init__(*layers)


class STFGAN(nn.Module):
    """G(C1, C2, C3, F1, F3) on [-1, 1] internally; unconditional WGAN critic; masked MSE (module adds 1e-3 WGAN)."""

    def __init__(
        self,
        in_ch: int = 1,
        coarse_pool: int = 4,
        adv_weight: float = 1e-3,
        gan_mode: str = "wgan_clip",
        output_activation: str = "tanh",
        stages: int = 1,
    ):
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(f"stfgan: model.net.output_activation={output_activation!r}; use one of "
                              f"{OUTPUT_ACTIVATIONS}")
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"stfgan: model.net.gan_mode={gan_mode!r} is not one of {GAN_MODES}")
        if stages != 1:
            raise ConfigError(f"stfgan: model.net.stages={stages} is not implemented; only the single-stage "
                              f"generator of the third-party code exists (stages: 1)")
        if coarse_pool != 4:
            raise ConfigError(f"stfgan: model.net.coarse_pool={coarse_pool}; the generator upsamples the coarse "
                              f"branch by exactly 4, so it must be 4")
        self.coarse_pool, self.output_activation = coarse_pool, output_activation
        self.adv_weight, self.gan_mode = adv_weight, gan_mode
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.generator = Generator(in_ch)
        self.discriminator = Discriminator(in_ch)

    def forward(self, batch: dict) -> torch.Tensor:
        h, w = batch["coarse_tgt"].shape[-2:]
        if h % self.coarse_pool or w % self.coarse_pool:
            raise ValueError(f"stfgan: input is {h}x{w}; H and W must be multiples of {self.coarse_pool} "
                             f"(size_multiple)")
        inside = SYMMETRIC.to_internal
        coarse = torch.cat([coarse_pool(inside(batch[k]), self.coarse_pool)
                            for k in ("coarse_ref", "coarse_tgt", "coarse_ref2")], 1)
        fine = torch.cat([inside(batch["fine_ref"]), inside(batch["fine_ref2"])], 1)
        y = self.generator(coarse, fine)
        if self.output_activation == "tanh":
            y = torch.tanh(y)
        return SYMMETRIC.from_internal(y)

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """Unconditional critic on the image in the internal range."""
        return SYMMETRIC.to_internal(image)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).flatten(1)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """MSE in the internal range over observed target pixels."""
        if pred is None:
            pred = self(batch)
        inside = SYMMETRIC.to_internal
        mse = masked_mse(inside(pred), inside(batch["fine_tgt"]), batch["valid_tgt"].bool())
        return {"loss": mse, "mse": mse.detach()}
