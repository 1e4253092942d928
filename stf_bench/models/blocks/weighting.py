"""How two single-reference predictions become one: inverse-change weighting (ICW) or the small learned weighting CNN
of STSCL, which the generic templates offer as ``weighting: learned`` (models.md part 1)."""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.models.blocks.fusion import icw_weights


def icw_combine(pred_1: torch.Tensor, pred_3: torch.Tensor, batch: dict, eps: float, k: int = 31) -> torch.Tensor:
    """w_1 P_1 + w_3 P_3 with ICW weights from the coarse changes C2 - C1 and C2 - C3."""
    w_1, w_3 = icw_weights(batch["coarse_tgt"], batch["coarse_ref"], batch["coarse_ref2"], eps, k)
    return w_1 * pred_1 + w_3 * pred_3


class LearnedWeighting(nn.Module):
    """[P_1, P_3, |C2 - C1|, |C2 - C3|] -> conv 4->32, ReLU, 32->32, ReLU, 32->2 -> softmax weights (11,010 params)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2, 3, padding=1),
        )

    def forward(self, pred_1: torch.Tensor, pred_3: torch.Tensor, batch: dict) -> torch.Tensor:
        c2 = batch["coarse_tgt"]
        x = torch.cat([pred_1, pred_3, (c2 - batch["coarse_ref"]).abs(), (c2 - batch["coarse_ref2"]).abs()], dim=1)
        w = torch.softmax(self.net(x), dim=1)
        return w[:, :1] * pred_1 + w[:, 1:] * pred_3
