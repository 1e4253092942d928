"""cnn_generic: the survey's four-block CNN, a template to copy when trying a new CNN fusion idea.

Survey: S. Bouaziz, A. Hafiane, R. Canals, R. Nedjai, "Deep Learning for Spatio-Temporal Fusion in Land Surface
Temperature Estimation: A Comprehensive Survey, Experimental Analysis, and Future Trends", arXiv 2412.16631, 2024.
Label: reconstructed. It stands for the CNN family, not for one paper (models.md part 1, "cnn_generic").

For one reference pair (F1, C1) and the target's coarse image C2 the network has four blocks:

1. spatial feature extraction from F1           conv 1->32, stride-2 32->64, stride-2 64->128 (ReLU) -> H/4
2. temporal variation extraction from [C1, C2]  the same stack with 2 input channels
3. fusion in latent space                       concat + 1x1 conv 256->128, ReLU  (or `add`: the plain sum)
4. reconstruction                               transposed conv 4x4/2 128->64, 64->32 (ReLU), then the
                                                "fully connected" part: 1x1 32->32, ReLU, 1x1 32->1 (linear)

``widths`` sets width and depth: one conv per entry, the first at full resolution and every further one with
stride 2, mirrored by one transposed conv each on the way back; the default [32, 64, 128] gives the design's
383,553 parameters. ``residual: true`` adds the delta baseline F1 + (C2 - C1) to the output (the survey's plain CNN
has none). With two references (pairing=two_refs) the same weights run once per reference and the two outputs are
combined by ICW (``weighting: icw``) or by the small weighting CNN of stscl (``weighting: learned``).

To start a new model: copy this file and conf/model/cnn_generic.yaml under a new id, change a block, and keep
``forward(batch) -> (B,1,H,W)`` reading only the keys the YAML lists in ``inputs``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import delta_baseline
from stf_bench.models.blocks.weighting import LearnedWeighting, icw_combine

FUSIONS = ("concat", "add")
WEIGHTINGS = ("icw", "learned")


def extractor(in_ch: int, widths: list[int]) -> nn.Sequential:
    """3x3 convs with ReLU through `widths`; every conv after the first halves the resolution."""
    layers, cin = [], in_ch
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(cin, width, 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
        cin = width
    return nn.Sequential(*layers)


def reconstruction(widths: list[int]) -> nn.Sequential:
    """Transposed 4x4 stride-2 convs back through `widths` (each doubles H and W), then two per-pixel layers."""
    layers = []
    for cin, cout in zip(widths[:0:-1], widths[-2::-1]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(widths[0], widths[0], 1), nn.ReLU(), nn.Conv2d(widths[0], 1, 1))


class CNNGeneric(nn.Module):
    """Four-block CNN on one reference pair; a shared-weight pass per reference when the batch has two.

    Reads `fine_ref`, `coarse_ref`, `coarse_tgt` and, when present, `fine_ref2`, `coarse_ref2`.
    """

    def __init__(self, widths: list[int], fusion: str, residual: bool, weighting: str, icw_kernel: int,
                 icw_eps_k: float, size_multiple: int):
        super().__init__()
        widths = [int(w) for w in widths]
        if fusion not in FUSIONS:
            raise ConfigError(f"cnn_generic: model.net.fusion={fusion!r} is unknown; choose one of {FUSIONS}.")
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"cnn_generic: model.net.weighting={weighting!r} is unknown; choose one of {WEIGHTINGS}.")
        if len(widths) < 1:
            raise ConfigError("cnn_generic: model.net.widths is empty; give one width per level, e.g. [32, 64, 128].")
        if int(size_multiple) % 2 ** (len(widths) - 1):
            raise ConfigError(f"cnn_generic: model.net.widths={widths} halves the resolution {len(widths) - 1} times, "
                              f"so model.size_multiple must be a multiple of {2 ** (len(widths) - 1)}, "
                              f"not {size_multiple}.")
        self.fusion, self.residual = fusion, residual
        self.icw_kernel, self.icw_eps_k = icw_kernel, icw_eps_k
        self.norm = None  # set by the training core; ICW's epsilon is given in Kelvin
        self.spatial = extractor(1, widths)  # block 1, on F1
        self.temporal = extractor(2, widths)  # block 2, on [C1, C2]
        # block 3: `add` needs no layer; `concat` mixes the 2 x width channels back to width
        deepest = widths[-1]
        self.fuse = nn.Sequential(nn.Conv2d(2 * deepest, deepest, 1), nn.ReLU()) if fusion == "concat" else None
        self.reconstruct = reconstruction(widths)  # block 4
        self.weighting = LearnedWeighting() if weighting == "learned" else None

    def predict_one(self, fine: torch.Tensor, coarse: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
        """The four blocks for one reference pair."""
        spatial = self.spatial(fine)
        temporal = self.temporal(torch.cat([coarse, coarse_tgt], 1))
        fused = self.fuse(torch.cat([spatial, temporal], 1)) if self.fuse is not None else spatial + temporal
        out = self.reconstruct(fused)
        return out + delta_baseline(fine, coarse, coarse_tgt) if self.residual else out

    def forward(self, batch: dict) -> torch.Tensor:
        pred_1 = self.predict_one(batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"])
        second = [k in batch for k in ("fine_ref2", "coarse_ref2")]
        if not any(second):
            return pred_1
        if not all(second):
            raise ValueError("cnn_generic: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        pred_3 = self.predict_one(batch["fine_ref2"], batch["coarse_ref2"], batch["coarse_tgt"])
        if self.weighting is not None:
            return self.weighting(pred_1, pred_3, batch)
        if self.norm is None:
            raise RuntimeError("cnn_generic: self.norm is not set; the training core sets it before fitting "
                               "(ICW's epsilon is 0.05 K in normalized units)")
        return icw_combine(pred_1, pred_3, batch, self.norm.kelvin_to_units(self.icw_eps_k), self.icw_kernel)
