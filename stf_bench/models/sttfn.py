"""STTFN (reconstructed): two direction networks trained on the reference pairs only, combined by ICW.

Paper: Z. Yin, P. Wu, G. M. Foody, Y. Wu, Z. Liu, Y. Du, F. Ling, "Spatiotemporal Fusion of Land Surface Temperature
Based on a Convolutional Neural Network", IEEE TGRS 59(2):1808-1822, 2021 (online 2020),
doi 10.1109/TGRS.2020.2999943. Label: reconstructed (no official code; the design follows the paper's figure as
models.md "sttfn" reads it, figure in yc-cui/Deep-Learning-Spatiotemporal-Fusion-Survey `README.assets/STTFN.png`).

- Net_f (forward in time) and Net_b (backward) have separate weights. Each maps [F_ref, C_ref, C_tgt] to a
  correction of the delta baseline F_ref + (C_tgt - C_ref): parallel 3x3/5x5/7x7 convs 3->32 (ReLU), concatenated
  and squeezed by a 1x1 conv 96->64 (ReLU), 4 x [3x3 64->64, ReLU], 3x3 64->1 (linear).
- Training (`train_on: references`, the default) never reads F2: Net_f(F1, C1, C3) -> F3 and Net_b(F3, C3, C1) -> F1,
  each an MSE over all pixels (references may be gap-filled). `all_pairs` adds Net_f(F1, C1, C2) -> F2 and
  Net_b(F3, C3, C2) -> F2, masked by `valid_tgt`. The two networks train independently, so their losses are summed.
- Prediction: P_f = Net_f(F1, C1, C2), P_b = Net_b(F3, C3, C2), combined with ICW (the paper's "spatiotemporal
  consistency weighting" in our reading: smoothed coarse changes, epsilon 0.05 K).
- Zero padding ('same') in every conv; the paper's padding is not known.
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import delta_baseline
from stf_bench.models.blocks.masked import masked_mse
from stf_bench.models.blocks.weighting import icw_combine

TRAIN_ON = ("references", "all_pairs")
ICW_EPS_K = 0.05


class DirectionNet(nn.Module):
    """One direction: delta baseline + CNN([F_ref, C_ref, C_tgt]) (162,561 parameters for one band)."""

    def __init__(self, in_ch: int = 1, width: int = 32, features: int = 64, depth: int = 4):
        super().__init__()
        self.multiscale = nn.ModuleList(nn.Conv2d(3 * in_ch, width, k, padding=k // 2) for k in (3, 5, 7))
        self.squeeze = nn.Conv2d(3 * width, features, 1)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(features, in_ch, 3, padding=1)

    def forward(self, fine_ref: torch.Tensor, coarse_ref: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
        x = torch.cat([fine_ref, coarse_ref, coarse_tgt], 1)
        x = torch.cat([torch.relu(conv(x)) for conv in self.multiscale], 1)
        x = self.body(torch.relu(self.squeeze(x)))
        return delta_baseline(fine_ref, coarse_ref, coarse_tgt) + self.head(x)


class STTFN(nn.Module):
    """Net_f and Net_b; `forward` reads `fine_ref`, `coarse_ref`, `coarse_tgt`, `fine_ref2`, `coarse_ref2`."""

    def __init__(self, in_ch: int = 1, train_on: str = "references", icw_window: int = 31):
        super().__init__()
        if train_on not in TRAIN_ON:
            raise ConfigError(f"sttfn: model.net.train_on={train_on!r} is not known; use one of {list(TRAIN_ON)} "
                              f"(references: the paper's training on reference pairs only).")
        self.train_on, self.icw_window = train_on, icw_window
        self.norm = None  # set by the training core; ICW's epsilon is given in Kelvin
        self.net_f = DirectionNet(in_ch)
        self.net_b = DirectionNet(in_ch)

    def _eps(self) -> float:
        if self.norm is None:
            raise RuntimeError("sttfn: ICW needs its 0.05 K epsilon in normalized units, but model.norm is not set; "
                               "the training core sets it before fitting (set net.norm = AffineNorm(...) by hand)")
        return self.norm.kelvin_to_units(ICW_EPS_K)

    def forward(self, batch: dict) -> torch.Tensor:
        c2 = batch["coarse_tgt"]
        pred_f = self.net_f(batch["fine_ref"], batch["coarse_ref"], c2)
        pred_b = self.net_b(batch["fine_ref2"], batch["coarse_ref2"], c2)
        return icw_combine(pred_f, pred_b, batch, self._eps(), self.icw_window)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Reference-pair MSEs (all pixels); with `all_pairs` also both directions to F2 over `valid_tgt`. `pred` is
        not used: each network is trained on its own direction."""
        f1, c1, f3, c3 = batch["fine_ref"], batch["coarse_ref"], batch["fine_ref2"], batch["coarse_ref2"]
        terms = {"forward_ref": masked_mse(self.net_f(f1, c1, c3), f3),
                 "backward_ref": masked_mse(self.net_b(f3, c3, c1), f1)}
        if self.train_on == "all_pairs":
            c2, f2, valid = batch["coarse_tgt"], batch["fine_tgt"], batch["valid_tgt"]
            terms["forward_tgt"] = masked_mse(self.net_f(f1, c1, c2), f2, valid)
            terms["backward_tgt"] = masked_mse(self.net_b(f3, c3, c2), f2, valid)
        loss = torch.stack(list(terms.values())).sum()
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}
