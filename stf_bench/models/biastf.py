"""BiaSTF (Y. Li, J. Li, L. He, J. Chen, A. Plaza, Science China Information Sciences 63(4):140302, 2020,
doi 10.1007/s11432-019-2805-y).

Label: reconstructed. Only the abstract is public: classical STF assumes that a change seen by the coarse sensor
transfers to the fine sensor unchanged; BiaSTF learns the difference between the two sensors' changes (the sensor
bias) with a CNN. The design is ours (models.md "biastf"): F2 = F1 + (C2 - C1) + B(F1, C1, C2), where B (conv3x3
3->64, 6 residual blocks as in dlstf, conv3x3 64->1 initialised to zero) predicts (F2 - F1) - (C2 - C1), so
training starts at the delta baseline. Receptive field 29 px, about one MODIS pixel.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.models.blocks.fusion import coarse_pool, delta_baseline
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.residual import residual_cnn


class BiaSTF(nn.Module):
    """Delta baseline plus a learned sensor bias; reads `fine_ref`, `coarse_ref`, `coarse_tgt`.

    `mean_weight` > 0 adds mean_weight * L1(A_r(B), 0) with r = `coarse_factor`: the bias may add detail but not
    shift the MODIS-scale mean (off by default).
    """

    def __init__(self, in_ch: int = 1, width: int = 64, n_blocks: int = 6, mean_weight: float = 0.0,
                 coarse_factor: int = 32):
        super().__init__()
        self.mean_weight, self.coarse_factor = mean_weight, coarse_factor
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.bias_net = residual_cnn(3 * in_ch, in_ch, width, n_blocks)

    def forward(self, batch: dict) -> torch.Tensor:
        f1, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        return delta_baseline(f1, c1, c2) + self.bias_net(torch.cat([f1, c1, c2], 1))

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L1 of the prediction (`pred` if given) over observed F2 pixels, the bias being learned through the output;
        plus the optional MODIS-scale mean term on B (all pixels: it does not involve F2)."""
        pred = self(batch) if pred is None else pred
        l1 = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
        if self.mean_weight <= 0:
            return {"loss": l1, "l1": l1.detach()}
        bias = pred - delta_baseline(batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"])
        mean_term = coarse_pool(bias, self.coarse_factor).abs().mean()
        return {"loss": l1 + self.mean_weight * mean_term, "l1": l1.detach(), "bias_mean": mean_term.detach()}
