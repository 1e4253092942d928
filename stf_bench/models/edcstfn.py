"""EDCSTFN (Tan et al., 2019): fine-image encoder + change encoder, summed in feature space and decoded.

Read from GitHub theonegis/edcstfn (master `model.py`, `experiment.py`, `ssim.py`; branch `autoencoder`). The
official network upsamples native MODIS x16 itself; here coarse images already lie on the fine grid, so that step
is gone and the network has no size constraint (the loss network's stride-2 conv sees prediction and target at the
same size, so it adds none either).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.models.blocks.masked import fill_invalid
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.pretrained import FeatureLossModel, FrozenEncoder, piece_block


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride))


def feature_network(in_ch: int = 1) -> nn.Sequential:
    """P, the loss network: 1->32->64->128 (stride 2)->128, ReLU after each (240,256 parameters for one band)."""
    return nn.Sequential(
        _conv3x3(in_ch, 32), nn.ReLU(),
        _conv3x3(32, 64), nn.ReLU(),
        _conv3x3(64, 128, stride=2), nn.ReLU(),
        _conv3x3(128, 128), nn.ReLU(),
    )


class FeatureAutoencoder(nn.Module):
    """P plus a decoder (128->128, bicubic x2, 128->64->32, 1x1 ->bands), trained to give P meaningful features."""

    size_multiple = 2  # the decoder's x2 restores the input size only for even sides

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.encoder = feature_network(in_ch)
        self.decoder = nn.Sequential(
            _conv3x3(128, 128), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False),
            _conv3x3(128, 64), nn.ReLU(),
            _conv3x3(64, 32), nn.ReLU(),
            nn.Conv2d(32, in_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def autoencoder_loss(recon: torch.Tensor, x: torch.Tensor, *, ssim_weight: float, data_range: float) -> torch.Tensor:
    """L1 + w * (1 - MS-SSIM), the autoencoder branch's loss."""
    return F.l1_loss(recon, x) + ssim_weight * (1 - ms_ssim(recon, x, data_range, variant="edcstfn"))


class EDCSTFNNetwork(nn.Module):
    """The fusion network alone, F2 = D(E_F(F_i) + E_R([C_i, F_i, C2])), without the loss network; reused as stage 1
    of `cascadestf`. Reads `fine_ref`, `coarse_ref`, `coarse_tgt` and, for two references, `fine_ref2`,
    `coarse_ref2`; two references are weighted in feature space."""

    def __init__(self, in_ch: int = 1):
        super().__init__()
        self.fine_encoder = nn.Sequential(
            _conv3x3(in_ch, 32), nn.ReLU(), _conv3x3(32, 64), nn.ReLU(), _conv3x3(64, 128), nn.ReLU()
        )
        # No activation at the end: the change code must be able to be negative.
        self.residual_encoder = nn.Sequential(
            _conv3x3(3 * in_ch, 32), nn.ReLU(), _conv3x3(32, 64), nn.ReLU(), _conv3x3(64, 128)
        )
        self.decoder = nn.Sequential(
            _conv3x3(128, 64), nn.ReLU(), _conv3x3(64, 32), nn.ReLU(), nn.Conv2d(32, in_ch, 1)
        )

    @staticmethod
    def _references(batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(F1, C1)] or [(F1, C1), (F3, C3)]."""
        refs = [(batch["fine_ref"], batch["coarse_ref"])]
        second = [k in batch for k in ("fine_ref2", "coarse_ref2")]
        if any(second) and not all(second):
            raise ValueError("edcstfn: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        if all(second):
            refs.append((batch["fine_ref2"], batch["coarse_ref2"]))
        return refs

    def _fuse(self, fine: torch.Tensor, coarse: torch.Tensor, coarse_tgt: torch.Tensor):
        """(fused feature E_F + E_R, change feature E_R) for one reference pair."""
        change = self.residual_encoder(torch.cat([coarse, fine, coarse_tgt], 1))
        return self.fine_encoder(fine) + change, change

    def forward(self, batch: dict) -> torch.Tensor:
        refs = self._references(batch)
        fused = [self._fuse(f, c, batch["coarse_tgt"]) for f, c in refs]
        if len(fused) == 1:
            return self.decoder(fused[0][0])
        (fused1, change1), (fused3, change3) = fused
        # Inverse weighting per feature element: trust the reference whose change code is smaller.
        inv1, inv3 = 1 / (change1.abs() + 1e-8), 1 / (change3.abs() + 1e-8)
        w1 = (inv1 / (inv1 + inv3)).clamp(0.0, 1.0)
        return self.decoder(w1 * fused1 + (1 - w1) * fused3)


class EDCSTFN(FeatureLossModel, EDCSTFNNetwork):
    """EDCSTFNNetwork trained with its compound loss on the frozen loss network P.

    `feature_encoder` is the YAML block {ckpt, ssim_weight, recipe} of the frozen loss network P.
    """

    autoencoder_cls = FeatureAutoencoder
    autoencoder_loss = staticmethod(autoencoder_loss)

    def __init__(self, feature_encoder: Mapping, in_ch: int = 1, alpha: float = 0.8, data_range: float = 1.0):
        super().__init__(in_ch)
        self.in_ch, self.alpha, self.data_range = in_ch, alpha, data_range
        self.piece = piece_block(feature_encoder, ("ckpt", "ssim_weight", "recipe"), f"edcstfn {self.PIECE}")
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.feature_encoder = FrozenEncoder(feature_network(in_ch), f"edcstfn {self.PIECE}")

    def _loss_terms(self, pred: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        """MSE over observed target pixels + MSE on P features + alpha (1 - MS-SSIM), the last two on the target
        whose unobserved pixels are replaced by the prediction (so those pixels add no error)."""
        valid = batch["valid_tgt"].bool()
        target = fill_invalid(batch["fine_tgt"], valid, pred)
        mse = (pred - target).pow(2).sum() / valid.sum().clamp(min=1)
        feature = F.mse_loss(self.feature_encoder(pred), self.feature_encoder(target))
        structure = ms_ssim(pred, target, self.data_range, variant="edcstfn")
        return {"loss": mse + feature + self.alpha * (1 - structure), "mse": mse, "feature": feature,
                "ms_ssim": structure}

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One reference: the loss of the prediction (`pred` if given). Two references: the mean of the losses of
        the two single-reference outputs, as the official training does (`pred`, a weighted fusion, is not used)."""
        refs = self._references(batch)
        if len(refs) == 1 and pred is not None:
            outputs = [pred]
        else:
            outputs = [self.decoder(self._fuse(f, c, batch["coarse_tgt"])[0]) for f, c in refs]
        per_output = [self._loss_terms(out, batch) for out in outputs]
        terms = {k: torch.stack([t[k] for t in per_output]).mean() for k in per_output[0]}
        return {k: v if k == "loss" else v.detach() for k, v in terms.items()}
