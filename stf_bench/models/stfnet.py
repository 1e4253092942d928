"""StfNet (Liu, Deng, Chanussot, Hong, Zhao, IEEE TGRS 57(9):6552-6564, 2019, doi 10.1109/TGRS.2019.2907310).

Label: re-implementation. The design follows models.md "stfnet", which was read from the third-party code GitHub
prowDIY/STF @22a1c99 (`src/model/stfnet/stfnet.py`, `src/trainer/stfnet_trainer.py`); written here from that
description, no code copied.

Two streams with separate weights predict the fine temporal differences from the coarse ones: stream I
[C2 - C1, F1] -> F2 - F1, stream II [C3 - C2, F3] -> F3 - F2. The loss adds a temporal-consistency term (the two
differences must add up to F3 - F1), and the output weights the two reference predictions by how little the
coarse image changed on each side.

Deviations from the re-implementation: the weight w is computed per image (the re-implementation averages over the
batch), and the hard-switch threshold `tau` is in normalized units of the training range (0.1 here equals the
re-implementation's 0.2 on its [-1, 1] scale; `tau: null` turns the switch off).
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.models.blocks.masked import masked_mse

EPS = 1e-6  # equal weights when neither side changed (normalized units, as the re-implementation)


def stream(in_ch: int = 2, features: int = 32, mapping: int = 16) -> nn.Sequential:
    """conv 9x9 2->32, ReLU; 5x5 32->16, ReLU; 5x5 16->1; 'same' padding, no residual (18,433 parameters)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, features, 9, padding=4), nn.ReLU(inplace=True),
        nn.Conv2d(features, mapping, 5, padding=2), nn.ReLU(inplace=True),
        nn.Conv2d(mapping, 1, 5, padding=2),
    )


class StfNet(nn.Module):
    """Reads `coarse_ref` (C1), `coarse_tgt` (C2), `coarse_ref2` (C3), `fine_ref` (F1) and `fine_ref2` (F3)."""

    def __init__(self, lam: float = 1.0, tau: float | None = 0.1) -> None:
        super().__init__()
        self.lam, self.tau = float(lam), None if tau is None else float(tau)
        self.norm = None  # set by the training core; StfNet works on normalized differences and needs no Kelvin
        self.stream_12 = stream()
        self.stream_23 = stream()

    def differences(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(D12 = F2 - F1, D23 = F3 - F2), predicted."""
        c1, c2, c3 = batch["coarse_ref"], batch["coarse_tgt"], batch["coarse_ref2"]
        d12 = self.stream_12(torch.cat([c2 - c1, batch["fine_ref"]], 1))
        d23 = self.stream_23(torch.cat([c3 - c2, batch["fine_ref2"]], 1))
        return d12, d23

    def weight(self, batch: dict) -> torch.Tensor:
        """w (B,1,1,1) of the F1 side: m23 / (m12 + m23) with m the per-image mean |coarse change| on each side;
        with `tau`, w = 1 (or 0) when the other side changed more than tau beyond this one."""
        c1, c2, c3 = batch["coarse_ref"], batch["coarse_tgt"], batch["coarse_ref2"]
        m12 = (c2 - c1).abs().mean(dim=(1, 2, 3), keepdim=True)
        m23 = (c3 - c2).abs().mean(dim=(1, 2, 3), keepdim=True)
        w = (m23 + EPS) / (m12 + m23 + 2 * EPS)
        if self.tau is not None:
            w = torch.where(m23 - m12 > self.tau, 1.0, torch.where(m12 - m23 > self.tau, 0.0, w))
        return w

    def forward(self, batch: dict) -> torch.Tensor:
        d12, d23 = self.differences(batch)
        w = self.weight(batch)
        return w * (batch["fine_ref"] + d12) + (1 - w) * (batch["fine_ref2"] - d23)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """MSE(D12) + MSE(D23) + lam MSE(D12 + D23, F3 - F1); the first two involve F2 and count observed pixels
        only, the temporal-consistency term is between references and uses every pixel."""
        d12, d23 = self.differences(batch)
        f1, f3, valid = batch["fine_ref"], batch["fine_ref2"], batch["valid_tgt"].bool()
        f2 = torch.where(valid, batch["fine_tgt"], 0.0)  # unobserved pixels (masked) must not carry NaN into sums
        first, second = masked_mse(d12, f2 - f1, valid), masked_mse(d23, f3 - f2, valid)
        consistency = masked_mse(d12 + d23, f3 - f1)
        return {"loss": first + second + self.lam * consistency, "d12": first.detach(), "d23": second.detach(),
                "consistency": consistency.detach()}
