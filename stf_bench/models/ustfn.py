"""USTFN (reconstructed): an unsupervised U-Net fusion trained by consistency losses, never by F2.

Paper: "An Unsupervised Model Based on Convolutional Neural Network for Fusing Landsat-8 and Sentinel-2 Data", IEEE,
2024 (https://ieeexplore.ieee.org/document/10642772); only the title could be consulted. Label: reconstructed - the
design is models.md "ustfn", ours, following the idea of the title and the survey's entry.

- G(F1, C1, C2) = b_1 + N([F1, C1, C2]), b_1 the delta baseline; N a U-Net (LeakyReLU 0.2, no normalization,
  3x3 'same' convs with zero padding, stride-2 convs down, bilinear x2 up) with a zero-initialised 1x1 head (G starts at b_1).
- Loss (assumed: consistency replaces supervision, since Wald-protocol training at a ratio of ~33 is not feasible on
  950 px scenes): coarse fidelity L1(A_r(F2^), A_r(C2)) + cycle L1(G(F2^, C2, C1), F1) + 0.1 L1(HP(F2^), HP(F1)).
  The cycle runs the same network back to the reference date, with gradients through both passes. None of the
  terms sees F2; `unsupervised: false` adds L1 against F2 over `valid_tgt` (an ablation).
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.models.blocks.fusion import coarse_pool, delta_baseline, high_pass, upsample
from stf_bench.models.blocks.head_init import zero_init_
from stf_bench.models.blocks.masked import masked_l1


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]


class UNet(nn.Module):
    """Three levels (32, 64, 128 channels at H, H/2, H/4); 471,553 parameters for one band."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.enc1 = nn.Sequential(*_conv(3 * in_ch, 32), *_conv(32, 32))
        self.enc2 = nn.Sequential(*_conv(32, 64, stride=2), *_conv(64, 64))
        self.enc3 = nn.Sequential(*_conv(64, 128, stride=2), *_conv(128, 128))
        self.dec2 = nn.Sequential(*_conv(128 + 64, 64), *_conv(64, 64))
        self.dec1 = nn.Sequential(*_conv(64 + 32, 32), *_conv(32, 32))
        self.head = zero_init_(nn.Conv2d(32, in_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1(x)
        s2 = self.enc2(s1)
        x = self.enc3(s2)
        x = self.dec2(torch.cat([upsample(x, s2.shape[-2:]), s2], 1))
        x = self.dec1(torch.cat([upsample(x, s1.shape[-2:]), s1], 1))
        return self.head(x)


class USTFN(nn.Module):
    """G(F1, C1, C2); `forward` reads `fine_ref`, `coarse_ref`, `coarse_tgt`."""

    def __init__(self, in_ch: int = 1, coarse_factor: int = 32, detail_weight: float = 0.1,
                 unsupervised: bool = True):
        super().__init__()
        self.coarse_factor, self.detail_weight, self.unsupervised = coarse_factor, detail_weight, unsupervised
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.unet = UNet(in_ch)

    def generate(self, fine: torch.Tensor, coarse: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
        """G: the fine image `fine` (seen with `coarse`) moved to the date of `coarse_tgt`."""
        return delta_baseline(fine, coarse, coarse_tgt) + self.unet(torch.cat([fine, coarse, coarse_tgt], 1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generate(batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"])

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Coarse fidelity + cycle + detail prior over all pixels (no term reads F2 unless `unsupervised` is off)."""
        f1, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        pred = self(batch) if pred is None else pred
        r = self.coarse_factor
        terms = {
            "coarse": masked_l1(coarse_pool(pred, r), coarse_pool(c2, r)),
            "cycle": masked_l1(self.generate(pred, c2, c1), f1),
            "detail": masked_l1(high_pass(pred), high_pass(f1)),
        }
        loss = terms["coarse"] + terms["cycle"] + self.detail_weight * terms["detail"]
        if not self.unsupervised:
            terms["supervised"] = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
            loss = loss + terms["supervised"]
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}
