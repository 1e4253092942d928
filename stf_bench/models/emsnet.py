"""EMSNet (reconstructed): W. Li, D. Cao, M. Xiang, "Enhanced Multi-Stream Remote Sensing Spatiotemporal Fusion
Network Based on Transformer and Dilated Convolution", Remote Sensing 14(18), 4544, 2022, doi 10.3390/rs14184544.
No code is public; this is the design of specs/models.md part 2 §14: MSNet (§11, msnet.py) with three changes named
in the abstract.

1. Extract Net: dilated 3x3 branches (dilation 1, 2, 3) instead of 3x3/5x5/7x7, and the 96 -> 64 conv dilated by 2.
2. Transformer: a LeFF MLP (depthwise 3x3 conv + GELU on the 16 x 16 token grid between its two linears).
3. Weighting: w = softmax_k(Conv3x3 (8 -> 2)(ReLU(Conv3x3 (2 -> 8)([|C2 - C1|, |C2 - C3|])))), per pixel, instead of
   the plain average: the network learns to trust the reference whose coarse image changed less.
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.models.msnet import MSNet


class ChangeWeighting(nn.Module):
    """Per-pixel softmax weights of the two references from their absolute coarse changes."""

    def __init__(self, in_ch: int = 1, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * in_ch, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, 2, 3, padding=1))

    def forward(self, change1: torch.Tensor, change3: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(torch.cat([change1, change3], dim=1)), dim=1)


class EMSNet(MSNet):
    """[F1, C1, F3, C3, C2] (normalized) -> F2 = w_1 P_1 + w_3 P_3."""

    enhanced = True

    def __init__(self, in_ch: int = 1, fixed_size: int = 256, patch: int = 16, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, weight_hidden: int = 8):
        super().__init__(in_ch, fixed_size, patch, dim, depth, heads, mlp_ratio)
        self.weighting = ChangeWeighting(in_ch, weight_hidden)

    def forward(self, batch: dict) -> torch.Tensor:
        p1, p3 = self.predictions(batch)
        c2 = batch["coarse_tgt"]
        w = self.weighting((c2 - batch["coarse_ref"]).abs(), (c2 - batch["coarse_ref2"]).abs())
        return w[:, :1] * p1 + w[:, 1:] * p3
