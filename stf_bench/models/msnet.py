"""MSNet (reconstructed): W. Li, D. Cao, Y. Peng, C. Yang, "MSNet: A Multi-Stream Fusion Network for Remote Sensing
Spatiotemporal Fusion Based on Transformer and Convolution", Remote Sensing 13(18), 3724, 2021,
doi 10.3390/rs13183724. No code is public; this is the design of specs/models.md part 2 §11, built from the abstract.

Per reference, a Transformer learns the global temporal correlation from dC = C2 - C_k and a multi-receptive-field
CNN ("Extract Net") maps [F_k, C_k, C2] to the output; the streams are blended by a learned weight into P_k, and the
two references' predictions are averaged. The learned positional embedding fixes the input to 256 px (fixed_size);
whole scenes go through the evaluation tiler. Both references share the weights (blocks/multistream.py).
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.models.blocks.multistream import MultiStream, check_two_refs


class MSNet(nn.Module):
    """[F1, C1, F3, C3, C2] (normalized, B x in_ch x size x size) -> F2 = (P_1 + P_3) / 2."""

    enhanced = False  # EMSNet's dilated Extract Net and LeFF Transformer

    def __init__(self, in_ch: int = 1, fixed_size: int = 256, patch: int = 16, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.in_ch, self.fixed_size = in_ch, fixed_size
        self.streams = MultiStream(in_ch, fixed_size, patch, dim, depth, heads, mlp_ratio,
                                   dilated=self.enhanced, leff=self.enhanced)
        self.norm = None  # AffineNorm, set by the training core; MSNet needs no Kelvin quantity

    def predictions(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The two intermediate predictions P_1 (from F1, C1) and P_3 (from F3, C3)."""
        check_two_refs(type(self).__name__, batch, self.fixed_size, self.in_ch)
        c2 = batch["coarse_tgt"]
        return (self.streams(batch["fine_ref"], batch["coarse_ref"], c2),
                self.streams(batch["fine_ref2"], batch["coarse_ref2"], c2))

    def forward(self, batch: dict) -> torch.Tensor:
        p1, p3 = self.predictions(batch)
        return 0.5 * (p1 + p3)
