"""The N-layer PatchGAN discriminator shared by the GAN models (pix2pix / pix2pixHD, models.md part 2 §6).

One class covers the variants the specs name:
- ``gan_generic``: 4x4 convs with padding 1, bias-free normalized layers, BatchNorm (2,764,609 parameters on 2 inputs);
- the part-2 "§6 PatchGAN" (MLFF-GAN, AMS-STF, explicit_stepwise, OBSTF): pix2pixHD's NLayer, padding 2, biased
  convs, BatchNorm, a 35x35 map at 256 (2,765,505 parameters on cat(image, C2));
- CycleGAN's unconditional 70x70 PatchGAN: padding 1, biased convs, InstanceNorm without affine (2,762,689 on 1 input).
It returns raw scores; a sigmoid, where a paper has one, belongs to the loss (``gan_mode: lsgan_sigmoid`` / ``bce``).
"""

from __future__ import annotations

import torch.nn as nn

NORMS = {"batch": lambda c: nn.BatchNorm2d(c), "instance": lambda c: nn.InstanceNorm2d(c, affine=False)}


class PatchDiscriminator(nn.Sequential):
    """4x4 convs: ``widths[0]`` with stride 2 and no normalization, then every width but the last with stride 2 and the
    last with stride 1, each normalized + LeakyReLU; a final 4x4 conv gives one score per position.

    ``bias``: whether the normalized convs carry a bias (the first and last always do).
    """

    def __init__(self, in_ch: int, widths: tuple[int, ...] = (64, 128, 256, 512), slope: float = 0.2,
                 padding: int = 1, bias: bool = False, norm: str = "batch"):
        if norm not in NORMS:
            raise ValueError(f"PatchDiscriminator norm={norm!r}; use one of {sorted(NORMS)}")
        widths = [int(w) for w in widths]
        layers = [nn.Conv2d(in_ch, widths[0], 4, stride=2, padding=padding), nn.LeakyReLU(slope)]
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            stride = 2 if i < len(widths) - 2 else 1
            layers += [nn.Conv2d(cin, cout, 4, stride=stride, padding=padding, bias=bias), NORMS[norm](cout),
                       nn.LeakyReLU(slope)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=padding))
        super().__init__(*layers)


def section6_patchgan(in_ch: int = 2) -> PatchDiscriminator:
    """models.md part 2 §6: pix2pixHD NLayer (padding 2, biased convs, BatchNorm); 2,765,505 parameters on 2 inputs."""
    return PatchDiscriminator(in_ch, padding=2, bias=True, norm="batch")
