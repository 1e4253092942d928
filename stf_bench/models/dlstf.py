"""Residual-CNN STF (X. Wang, X. Wang, Journal of Sensors 2020, article 8873079, doi 10.1155/2020/8873079).

Label: reconstructed. Only the abstract is public: a deep residual CNN takes the MODIS image and learns the
MODIS-to-Landsat residual, the prediction being MODIS plus that residual. The design is ours (models.md "dlstf"):
F2 = C2 + R(x), R = conv3x3 in->64, 8 residual blocks, conv3x3 64->1 initialised to zero (training starts at C2).

`use_reference: false` (default, faithful to the abstract): x = C2, and the reference pair (C1, F1) is a second
training pair. `use_reference: true`: x = [C2, F1, C1]; the reference pair is then an input, so only the target pair
is trained (our choice: the abstract has no reference input to learn from).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.models.blocks.masked import masked_mse
from stf_bench.models.blocks.residual import residual_cnn


class DLSTF(nn.Module):
    """F2 = C2 + R(C2), or C2 + R([C2, F1, C1]) with `use_reference`."""

    def __init__(self, in_ch: int = 1, width: int = 64, n_blocks: int = 8, use_reference: bool = False):
        super().__init__()
        self.use_reference = use_reference
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.residual = residual_cnn((3 if use_reference else 1) * in_ch, in_ch, width, n_blocks)

    def forward(self, batch: dict) -> torch.Tensor:
        coarse = batch["coarse_tgt"]
        x = torch.cat([coarse, batch["fine_ref"], batch["coarse_ref"]], 1) if self.use_reference else coarse
        return coarse + self.residual(x)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """MSE of C + R(C) against F on the target pair (observed pixels of F2) and, without `use_reference`, on the
        reference pair (all pixels, gap-filled references included); the loss is their mean."""
        if self.use_reference:
            pred = self(batch) if pred is None else pred
            tgt = masked_mse(pred, batch["fine_tgt"], batch["valid_tgt"])
            return {"loss": tgt, "mse_tgt": tgt.detach()}
        n = batch["coarse_tgt"].shape[0]
        coarse = torch.cat([batch["coarse_tgt"], batch["coarse_ref"]], 0)  # both pairs in one pass
        out = coarse + self.residual(coarse)
        tgt = masked_mse(out[:n], batch["fine_tgt"], batch["valid_tgt"])
        ref = masked_mse(out[n:], batch["fine_ref"])
        return {"loss": (tgt + ref) / 2, "mse_tgt": tgt.detach(), "mse_ref": ref.detach()}
