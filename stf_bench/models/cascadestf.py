"""CascadeSTF (reconstructed): a supervised fusion network refined by a self-supervised stage at the MODIS scale.

Paper: W. Sun, J. Li, M. Jiang, Q. Yuan, "Supervised and Self-Supervised Learning-Based Cascade Spatiotemporal
Fusion Framework and Its Application", ISPRS J. Photogramm. Remote Sens. 203, 2023,
doi 10.1016/j.isprsjprs.2023.07.022. Label: reconstructed - only the abstract is public; the design is models.md
"cascadestf".

- Stage 1: the EDCSTFN fusion network in one-reference mode (stf_bench.models.edcstfn.EDCSTFNNetwork, imported, not
  copied), trained on F2 of the training dates with MSE + 0.5 (1 - SSIM), without EDCSTFN's frozen feature loss.
  It gives P0.
- Stage 2: a refiner R([P0, C2, F1]) (3x3 convs, LeakyReLU 0.2, zero-initialised head); F2^ = P0 + R. It never
  sees F2: L1(A_r(F2^), A_r(C2)) + 1.0 L1(HP(F2^), HP(P0)). Assumption: the paper's stage 2 learns on downsampled
  data, which leaves nothing to learn from at the LST ratio (~33), so MODIS-scale consistency replaces it.
- Schedule by epoch: the first round(stage1_fraction * max_epochs) epochs train stage 1 only; then stage 1 is frozen
  (P0 computed without gradient, so Adam skips its parameters) and R trains.
- `stage2_transductive` (test-time adaptation of stage 2 on each test scene in evaluate.py) is not implemented yet:
  true raises a ConfigError.
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool, high_pass
from stf_bench.models.blocks.head_init import zero_init_
from stf_bench.models.blocks.masked import fill_invalid, masked_l1, masked_mse
from stf_bench.models.blocks.msssim import ssim
from stf_bench.models.edcstfn import EDCSTFNNetwork

STAGE1_KEYS = ("fine_ref", "coarse_ref", "coarse_tgt")


def refiner(in_ch: int = 1, width: int = 32, depth: int = 4) -> nn.Sequential:
    """R: conv 3x3 3->32, LeakyReLU; depth x [32->32, LeakyReLU]; 32->1 (38,177 parameters for one band)."""
    layers: list[nn.Module] = [nn.Conv2d(3 * in_ch, width, 3, padding=1), nn.LeakyReLU(0.2)]
    for _ in range(depth):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, zero_init_(nn.Conv2d(width, in_ch, 3, padding=1)))


class CascadeSTF(nn.Module):
    """P0 = stage1(F1, C1, C2); F2^ = P0 + R([P0, C2, F1]). `forward` reads `fine_ref`, `coarse_ref`, `coarse_tgt`."""

    def __init__(self, max_epochs: int, in_ch: int = 1, stage1_fraction: float = 0.6, coarse_factor: int = 32,
                 ssim_weight: float = 0.5, detail_weight: float = 1.0, data_range: float = 1.0,
                 stage2_transductive: bool = False):
        super().__init__()
        if stage2_transductive:
            raise ConfigError("cascadestf: model.net.stage2_transductive=true (test-time adaptation of stage 2 in "
                              "evaluate.py) is not implemented yet; set model.net.stage2_transductive=false.")
        if not 0 < stage1_fraction <= 1:
            raise ConfigError(f"cascadestf: model.net.stage1_fraction={stage1_fraction} must lie in (0, 1]; it is "
                              f"the share of the epochs that trains stage 1 (default 0.6).")
        if int(max_epochs) < 1:
            raise ConfigError(f"cascadestf: model.net.max_epochs={max_epochs} must be >= 1; it is normally "
                              f"${{model.train.max_epochs}}.")
        self.stage1_epochs = max(1, round(stage1_fraction * int(max_epochs)))
        self.coarse_factor, self.ssim_weight, self.detail_weight = coarse_factor, ssim_weight, detail_weight
        self.data_range = data_range
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.stage1 = EDCSTFNNetwork(in_ch)
        self.refiner = refiner(in_ch)

    def initial(self, batch: dict) -> torch.Tensor:
        """P0, stage 1 in one-reference mode (a second reference in the batch is not used)."""
        return self.stage1({k: batch[k] for k in STAGE1_KEYS})

    def refine(self, p0: torch.Tensor, batch: dict) -> torch.Tensor:
        return p0 + self.refiner(torch.cat([p0, batch["coarse_tgt"], batch["fine_ref"]], 1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.refine(self.initial(batch), batch)

    def stage(self, epoch: int) -> int:
        return 1 if epoch < self.stage1_epochs else 2

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Stage 1: MSE over `valid_tgt` + w (1 - SSIM) of P0 against F2 (unobserved pixels filled with P0, so they add
        no error). Stage 2: MODIS-scale fidelity + detail kept from the detached P0; F2 is not read. `pred` is not
        used: each stage's loss needs its own intermediate."""
        if self.stage(epoch) == 1:
            p0 = self.initial(batch)
            valid = batch["valid_tgt"].bool()
            mse = masked_mse(p0, batch["fine_tgt"], valid)
            structure = ssim(p0, fill_invalid(batch["fine_tgt"], valid, p0), self.data_range)
            loss, terms = mse + self.ssim_weight * (1 - structure), {"mse": mse, "ssim": structure}
        else:
            with torch.no_grad():
                p0 = self.initial(batch)
            refined = self.refine(p0, batch)
            r = self.coarse_factor
            coarse = masked_l1(coarse_pool(refined, r), coarse_pool(batch["coarse_tgt"], r))
            detail = masked_l1(high_pass(refined), high_pass(p0))
            loss, terms = coarse + self.detail_weight * detail, {"coarse": coarse, "detail": detail}
        stage = torch.tensor(float(self.stage(epoch)), device=loss.device)
        return {"loss": loss, "stage": stage, **{k: v.detach() for k, v in terms.items()}}
