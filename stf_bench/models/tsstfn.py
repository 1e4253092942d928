"""TSSTFN (Zhan et al., 2024), reconstructed: a ConvLSTM over a time series of reference pairs.

W. Zhan, F. Luo, H. Luo, J. Li, Y. Wu, Z. Yin, Y. Wu, P. Wu, "Time-Series-Based Spatiotemporal Fusion Network for
Improving Crop Type Mapping", Remote Sensing 16(2):235, 2024, doi 10.3390/rs16020235. Label: reconstructed (no
public code; the design is models.md part 1 "tsstfn", built from the abstract): multi-temporal coarse-fine pairs
serve as references and an LSTM integrates them to predict the fine image of the target date.

- A shared encoder sees each reference as [F_i, C_i, C2 - C_i] (H/2); a ConvLSTM (hidden 64) reads the references
  from the farthest to the nearest, each with a constant Delta-t plane; a decoder on [h_last, Enc_T(C2)] predicts a
  residual on the delta baseline of the nearest reference. Design count 465,153 for one band.
- References: K of them under `pairing=sequence` (absent slots leave the LSTM state unchanged), or the standard
  one- or two-reference sample (the default pairing), ordered by their dates (stf_bench/models/blocks/sequence.py).
- Deviations from the paper: the NDVI specifics and the previous-year MODIS/Sentinel-2 setting are dropped; the
  Delta-t plane is (reference - target) in days / `dt_scale_days`, signed (references may follow the target).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.models.blocks.fusion import delta_baseline, gradient_l1
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.recurrent import ConvLSTMCell
from stf_bench.models.blocks.sequence import reference_sequence


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class TSSTFN(nn.Module):
    """Per-reference encoder -> ConvLSTM over the references (farthest first) -> decoder + nearest delta baseline."""

    def __init__(self, in_ch: int, hidden: int, dt_scale_days: float, grad_weight: float) -> None:
        super().__init__()
        self.dt_scale_days, self.grad_weight = float(dt_scale_days), float(grad_weight)
        self.norm = None  # set by the training core; unused (no Kelvin quantity in this model)
        # [F_i, C_i, C2 - C_i] -> H/2: 896 + 18,496 + 36,928 = 56,320
        self.ref_encoder = nn.Sequential(_conv(3 * in_ch, 32), nn.ReLU(), _conv(32, 64, 2), nn.ReLU(),
                                         _conv(64, 64), nn.ReLU())
        self.lstm = ConvLSTMCell(64 + 1, hidden)  # features + Delta-t plane: 297,472
        self.target_encoder = nn.Sequential(_conv(in_ch, 32), nn.ReLU(), _conv(32, 64, 2), nn.ReLU())  # 18,816
        self.decoder_low = nn.Sequential(_conv(hidden + 64, 64), nn.ReLU())  # at H/2: 73,792
        self.decoder_high = nn.Sequential(_conv(64, 32), nn.ReLU(), _conv(32, in_ch))  # after x2: 18,753

    def forward(self, batch: dict) -> torch.Tensor:
        seq = reference_sequence(batch)
        coarse_tgt = batch["coarse_tgt"]
        b, k, h, w = seq.fine.shape
        x = torch.stack([seq.fine, seq.coarse, coarse_tgt - seq.coarse], dim=2)  # (B,K,3,H,W)
        feats = self.ref_encoder(x.flatten(0, 1)).unflatten(0, (b, k))  # (B,K,64,H/2,W/2)
        state = self.lstm.zero_state(feats[:, 0])
        for i in range(k):
            _, _, present, days = seq.step(i)
            dt_plane = (days / self.dt_scale_days).expand(b, 1, *feats.shape[-2:])
            new = self.lstm(torch.cat([feats[:, i], dt_plane], dim=1), state)
            state = tuple(torch.where(present, n, s) for n, s in zip(new, state))  # absent slot: state unchanged
        z = self.decoder_low(torch.cat([state[0], self.target_encoder(coarse_tgt)], dim=1))
        residual = self.decoder_high(F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False))
        fine_n, coarse_n, _, _ = seq.step(k - 1)  # the nearest reference
        return residual + delta_baseline(fine_n, coarse_n, coarse_tgt)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict:
        """L1(F2_hat, F2) + grad_weight * L1(grad F2_hat, grad F2), both over valid target pixels."""
        pred = self(batch) if pred is None else pred
        l1 = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
        grad = gradient_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
        return {"loss": l1 + self.grad_weight * grad, "l1": l1.detach(), "grad": grad.detach()}
