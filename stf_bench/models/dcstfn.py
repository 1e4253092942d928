"""DCSTFN (Z. Tan, P. Yue, L. Di, J. Tang, Remote Sensing 10(7):1066, 2018, doi 10.3390/rs10071066).

Label: official-code. Read from GitHub theonegis/dcstfn, branch `pytorch` @1863be7: `model.py` (HTLSNet, LTHSNet,
ReconstructNet, FusionNet), `experiment.py` (MSE, Adam 1e-3, ExponentialLR 0.75 stepped once per epoch, best epoch
on validation SSIM), `run.py` (channels 32/64/128, batch 32, 30 epochs, 10-px coarse patches at x16).

Two branches meet at half the fine resolution: the coarse branch lifts native coarse images x8 with three transposed
convs, the fine branch halves F1 with a max-pool; fused = Fine(F1) - Coarse(C1) + Coarse(C2), then a transposed conv
(x2) and two 1x1 layers reconstruct F2.

Deviations: coarse images arrive on the fine grid here, so the network first average-pools C1 and C2 by
`coarse_pool` = 16 to the official native input (identical when the coarse image is constant on 16 x 16 blocks).
The official reconstruction applies two nn.Linear layers over the channel axis; they are the 1x1 convs used here.
`coarse_pool: 1` is the alternative for coarse images kept on the fine grid: the transposed convs become stride-1
3 x 3 convs and a max-pool 2 follows the coarse branch's second conv (same parameter count).

Fidelity: the official FusionNet([32, 64, 128]) with its weights copied into this module (transposed convs 1:1, the
Linear weights reshaped to 1x1 convs) gives the same output on a 160 px F1 and 10 px native C1, C2 (fed here as
their nearest x16 upsampling), three seeds: max |difference| 3.0e-8 (float32, CPU; the 1x1 convs sum in another
order than nn.Linear), 408,961 parameters each. Script outside the repository: /work/scratch/dcstfn/fidelity.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool as avg_pool

WIDTHS = (32, 64, 128)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    """3 x 3 transposed conv, stride 2: doubles the size exactly."""
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


def coarse_branch(in_ch: int, native: bool) -> nn.Sequential:
    """Native coarse input (x8 by transposed convs) or fine-grid coarse input (max-pool 2, stride-1 convs); both end
    at half the fine resolution with 128 channels."""
    a, b, c = WIDTHS
    if native:
        middle = [m for _ in range(3) for m in (_up(b, b), nn.ReLU())]
    else:
        middle = [nn.MaxPool2d(2)] + [m for _ in range(3) for m in (_conv(b, b), nn.ReLU())]
    return nn.Sequential(_conv(in_ch, a), nn.ReLU(), _conv(a, b), nn.ReLU(), *middle, _conv(b, c), nn.ReLU())


class DCSTFN(nn.Module):
    """F2 = Rec(Fine(F1) - Coarse(C1) + Coarse(C2)); reads `fine_ref`, `coarse_ref`, `coarse_tgt`."""

    def __init__(self, in_ch: int = 1, coarse_pool: int = 16):
        super().__init__()
        if coarse_pool not in (1, 16):
            raise ConfigError(f"model.net.coarse_pool={coarse_pool}: DCSTFN's topology fits 16 (native coarse input, "
                              f"x8 then /2) or 1 (coarse input on the fine grid); use one of them.")
        self.coarse_pool = coarse_pool
        self.size_multiple = 16 if coarse_pool == 16 else 2
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        a, b, c = WIDTHS
        self.coarse_branch = coarse_branch(in_ch, native=coarse_pool > 1)
        self.fine_branch = nn.Sequential(
            _conv(in_ch, a), nn.ReLU(), _conv(a, b), nn.ReLU(), nn.MaxPool2d(2),
            _conv(b, b), nn.ReLU(), _conv(b, c), nn.ReLU(),
        )
        self.reconstruction = nn.Sequential(
            _up(c, b), nn.ReLU(), nn.Conv2d(b, a, 1), nn.ReLU(), nn.Conv2d(a, in_ch, 1)
        )

    def forward(self, batch: dict) -> torch.Tensor:
        fine, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        h, w = fine.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"dcstfn: input {h}x{w} px, but sides must be multiples of {self.size_multiple} "
                             f"(coarse_pool={self.coarse_pool})")
        if self.coarse_pool > 1:
            c1, c2 = avg_pool(c1, self.coarse_pool), avg_pool(c2, self.coarse_pool)
        # the official order of the sum, so that the fidelity check is exact
        fused = self.fine_branch(fine) - self.coarse_branch(c1) + self.coarse_branch(c2)
        return self.reconstruction(fused)
