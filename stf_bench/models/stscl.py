"""STSCL (reconstructed): spatio-temporal-spectral collaborative learning for fusion with land-cover changes.

X. Meng, Q. Liu, F. Shao, S. Li, "Spatio-Temporal-Spectral Collaborative Learning for Spatio-Temporal Fusion With
Land Cover Changes", IEEE TGRS 60, 2022, doi 10.1109/TGRS.2022.3185459. Label: reconstructed - only the abstract is
public; the design is models.md part 1 "stscl" (three sub-networks the abstract names: a multi-scale Siamese CNN
with flexible weight sharing, a multi-layer ConvLSTM that learns land-cover change, an adaptive weighting network).

Choices the catalogue leaves open: "flexible weight sharing" is read as sensor-specific stems in front of one shared
trunk; the state-init 1x1 conv is linear (an LSTM state, not a feature map, so no ReLU); the spectral part of the
change loss is undefined for one band and dropped, the gradient term stands in for its spatial part.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.models.blocks.fusion import delta_baseline, gradient_l1
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.recurrent import ConvLSTMCell
from stf_bench.models.blocks.weighting import LearnedWeighting


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation),
                         nn.ReLU(inplace=True))


class SiameseEncoder(nn.Module):
    """phi: a fine and a coarse stem (3x3 1->32) into one shared multi-scale trunk (dilations 1, 2, 3 -> 1x1 96->64)
    and a stride-2 3x3 64->64; (B,1,H,W) -> (B,64,H/2,W/2). 71,520 parameters."""

    def __init__(self, width: int = 32, features: int = 64) -> None:
        super().__init__()
        self.fine_stem = _conv(1, width)
        self.coarse_stem = _conv(1, width)
        self.branches = nn.ModuleList(_conv(width, width, dilation=d) for d in (1, 2, 3))
        self.merge = _conv(3 * width, features, kernel=1)
        self.down = _conv(features, features, stride=2)

    def forward(self, x: torch.Tensor, sensor: str) -> torch.Tensor:
        x = (self.fine_stem if sensor == "fine" else self.coarse_stem)(x)
        return self.down(self.merge(torch.cat([branch(x) for branch in self.branches], dim=1)))


class STSCL(nn.Module):
    """F2 = w_1 P_1 + w_3 P_3 with P_i = b_i + D(ConvLSTM over [phi_c(C_i), phi_c(C2)] from a state set by phi_f(F_i)).

    Reads `fine_ref`, `coarse_ref`, `fine_ref2`, `coarse_ref2`, `coarse_tgt`. The two references share every weight
    (they run as one doubled batch); the learned weighting decides per pixel which one to trust.
    """

    def __init__(self, features: int = 64, layers: int = 2, kernel: int = 3, width: int = 32,
                 pred_weight: float = 0.5, grad_weight: float = 0.1) -> None:
        super().__init__()
        self.pred_weight, self.grad_weight = pred_weight, grad_weight
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.encoder = SiameseEncoder(width, features)
        self.convlstm = nn.ModuleList(ConvLSTMCell(features, features, kernel) for _ in range(layers))
        self.state_init = nn.Conv2d(features, 2 * features, 1)
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            _conv(features, width), nn.Conv2d(width, 1, 3, padding=1),
        )
        self.weighting = LearnedWeighting(width)

    def _predictions(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(F2_hat, P_1, P_3)."""
        fine = torch.cat([batch["fine_ref"], batch["fine_ref2"]])
        coarse = torch.cat([batch["coarse_ref"], batch["coarse_ref2"]])
        target = batch["coarse_tgt"]
        h0, c0 = self.state_init(self.encoder(fine, "fine")).chunk(2, dim=1)
        coarse_tgt = self.encoder(target, "coarse")
        sequence = [self.encoder(coarse, "coarse"), torch.cat([coarse_tgt, coarse_tgt])]
        for cell in self.convlstm:  # layer by layer; every layer starts from the reference's (h0, c0)
            state, outputs = (h0, c0), []
            for x in sequence:
                state = cell(x, state)
                outputs.append(state[0])
            sequence = outputs
        residual = self.decoder(sequence[-1])  # H and W even (size_multiple 2)
        pred_1, pred_3 = (delta_baseline(fine, coarse, torch.cat([target, target])) + residual).chunk(2)
        return self.weighting(pred_1, pred_3, batch), pred_1, pred_3

    def forward(self, batch: dict) -> torch.Tensor:
        return self._predictions(batch)[0]

    def compute_loss(self, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        """L1(F2_hat, F2) + 0.5 mean_i L1(P_i, F2) + 0.1 L1(grad F2_hat, grad F2), all over observed target pixels."""
        fused, pred_1, pred_3 = self._predictions(batch)
        target, valid = batch["fine_tgt"], batch["valid_tgt"]
        l1 = masked_l1(fused, target, valid)
        refs = 0.5 * (masked_l1(pred_1, target, valid) + masked_l1(pred_3, target, valid))
        grad = gradient_l1(fused, target, valid)
        loss = l1 + self.pred_weight * refs + self.grad_weight * grad
        return {"loss": loss, "l1": l1.detach(), "ref_l1": refs.detach(), "grad_l1": grad.detach()}
