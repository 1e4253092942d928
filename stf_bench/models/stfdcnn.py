"""STFDCNN (Song, Liu, Wang, Hang, Huang, IEEE JSTARS 11(3):821-829, 2018, doi 10.1109/JSTARS.2018.2797894).

Label: re-implementation. The design follows models.md "stfdcnn", which was read from the third-party code GitHub
prowDIY/STF @22a1c99 (`src/model/stfdcnn/stfdcnn.py`, `src/inferencer/stfdcnn_inferencer.py`, the
`config/stfdcnn/*` training files); this module is written from that description, no code is copied.

Two CNNs of the same shape, trained independently: NLM maps MODIS to a low-spatial-resolution Landsat image
(LSR(x) = U(A_s(x)), s = `lsr_factor` = 8, about 240 m) and SR maps LSR to Landsat. Prediction fuses twice, at the LSR
scale on NLM outputs and at full resolution on SR outputs, each with ICW weights over the two references.

The pipeline takes its per-stage network as a factory (`stage_network`), so `vdcn` (VDSR-20 stages, see
models/vdcn.py) is this same class with another network.

Deliberate deviations from the re-implementation:
- Fusion weights are the catalogue's ICW (k x k box mean of the change, eps 0.05 K), not the per-pixel inverse of
  |T2 - T_i| with eps 1e-6 the re-implementation uses.
- `fusion: hpm` (default, the paper's high-pass modulation P * R / Q) is computed in Kelvin; the re-implementation's
  additive form P + (R - Q) is `fusion: additive`.
- With one reference only the t1 branch is used (w_1 = 1).
- Both stages train in one optimizer (summed losses, parameter groups for the two learning rates) instead of two
  separate runs; every (C, F) pair of a sample (references and target) is a training pair, the target's pairs
  masked with `valid_tgt` (its LSR image is the mean of the observed pixels of each block).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool, icw_weights, upsample
from stf_bench.models.blocks.masked import masked_mse

FUSIONS = ("hpm", "additive")
KELVIN_FLOOR = 1.0  # absolute temperatures are positive; guards an untrained network's hpm against division by ~0


class GlobalResidual(nn.Module):
    """x + body(x): the network learns the correction to its input (the fine detail the input lacks)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def srcnn(in_ch: int = 1, features: int = 64, mapping: int = 32) -> GlobalResidual:
    """STFDCNN's stage network: conv 9x9 1->64, ReLU, 5x5 64->32, ReLU, 5x5 32->1, 'same' padding, global residual
    (57,281 parameters for one band)."""
    return GlobalResidual(nn.Sequential(
        nn.Conv2d(in_ch, features, 9, padding=4), nn.ReLU(inplace=True),
        nn.Conv2d(features, mapping, 5, padding=2), nn.ReLU(inplace=True),
        nn.Conv2d(mapping, in_ch, 5, padding=2),
    ))


def lsr(x: torch.Tensor, factor: int) -> torch.Tensor:
    """LSR(x) = U(A_s(x)): the image as a sensor of s times coarser pixels would see it, back on the fine grid."""
    return upsample(coarse_pool(x, factor), x.shape[-2:])


def masked_lsr(x: torch.Tensor, valid: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LSR from the valid pixels only, and where it is defined (every block it interpolates has a valid pixel).

    Invalid pixels may hold anything (even NaN); they never enter the block means."""
    v = valid.to(x.dtype)
    total, count = coarse_pool(torch.where(valid, x, 0.0), factor), coarse_pool(v, factor)
    means = total / count.clamp_min(torch.finfo(x.dtype).tiny)
    defined = upsample((count > 0).to(x.dtype), x.shape[-2:]) > 1 - 1e-4
    return upsample(means, x.shape[-2:]), defined


class STFDCNN(nn.Module):
    """NLM (MODIS -> LSR) and SR (LSR -> Landsat) stage networks and the two-pass fusion of models.md "stfdcnn".

    Reads `coarse_ref`, `coarse_tgt`, `fine_ref` and, for two references, `coarse_ref2`, `fine_ref2`.
    `stage_network` builds one stage network (a factory, called once per stage: the stages share no weights).
    """

    def __init__(self, stage_network: Callable[[], nn.Module], lsr_factor: int = 8, fusion: str = "hpm",
                 icw_window: int = 31, icw_eps_k: float = 0.05) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"model.net.fusion={fusion!r} is not one of {FUSIONS}: use hpm (the paper's high-pass "
                              f"modulation, in Kelvin) or additive (the re-implementation's P + (R - Q)).")
        if int(lsr_factor) < 2:
            raise ConfigError(f"model.net.lsr_factor={lsr_factor} must be at least 2 (the LSR scale in fine pixels; "
                              f"8 is about 240 m for Landsat).")
        self.lsr_factor, self.fusion = int(lsr_factor), fusion
        self.icw_window, self.icw_eps_k = int(icw_window), float(icw_eps_k)
        self.norm = None  # set by the training core: hpm and ICW's epsilon are Kelvin quantities
        self.nlm = stage_network()
        self.sr = stage_network()

    def _norm(self):
        if self.norm is None:
            raise RuntimeError("STFDCNN.norm is None: the training core sets the normalization (AffineNorm) before "
                               "prediction; hpm fusion and ICW's epsilon are defined in Kelvin.")
        return self.norm

    @staticmethod
    def _references(batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(F1, C1)] or [(F1, C1), (F3, C3)]."""
        refs = [(batch["fine_ref"], batch["coarse_ref"])]
        second = [k in batch for k in ("fine_ref2", "coarse_ref2")]
        if any(second) and not all(second):
            raise ValueError("stfdcnn: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        if all(second):
            refs.append((batch["fine_ref2"], batch["coarse_ref2"]))
        return refs

    def _fuse(self, p: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The reference R moved by the change from Q to P: hpm P R / Q in Kelvin, or additive P + (R - Q)."""
        if self.fusion == "additive":
            return p + (r - q)
        norm = self._norm()
        p_k, q_k, r_k = norm.to_kelvin(p), norm.to_kelvin(q), norm.to_kelvin(r)
        return norm.from_kelvin(p_k * r_k / q_k.clamp_min(KELVIN_FLOOR))

    def _weighted(self, target: torch.Tensor, per_ref: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """sum_i w_i fuse(target, Q_i, R_i) with ICW weights on the stage outputs (w_1 = 1 for one reference)."""
        preds = [self._fuse(target, q, r) for q, r in per_ref]
        if len(preds) == 1:
            return preds[0]
        eps = self._norm().kelvin_to_units(self.icw_eps_k)
        w_1, w_3 = icw_weights(target, per_ref[0][0], per_ref[1][0], eps, self.icw_window)
        return w_1 * preds[0] + w_3 * preds[1]

    def forward(self, batch: dict) -> torch.Tensor:
        refs = self._references(batch)
        s = self.lsr_factor
        lsr_refs = [lsr(f, s) for f, _ in refs]
        # Pass 1, at the LSR scale: NLM outputs T_i, references LSR(F_i).
        t2 = self.nlm(batch["coarse_tgt"])
        lsr_tgt = self._weighted(t2, [(self.nlm(c), l) for (_, c), l in zip(refs, lsr_refs)])
        # Pass 2, at full resolution: SR outputs S_i, references F_i.
        s2 = self.sr(lsr_tgt)
        return self._weighted(s2, [(self.sr(l), f) for (f, _), l in zip(refs, lsr_refs)])

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """NLM: MSE(NLM(C), LSR(F)); SR: MSE(SR(LSR(F)), F); over the pairs (C1, F1), (C2, F2), (C3, F3), pooled.

        The stages train independently (each sees true inputs, never the other's output), so the sum trains both
        in one optimizer. Target-date terms count only observed pixels; `pred` is not needed."""
        refs = self._references(batch)
        coarse = torch.cat([batch["coarse_tgt"]] + [c for _, c in refs])
        fine = torch.cat([batch["fine_tgt"]] + [f for f, _ in refs])
        valid = torch.cat([batch["valid_tgt"].bool()] + [torch.ones_like(f, dtype=torch.bool) for f, _ in refs])
        lsr_fine, defined = masked_lsr(fine, valid, self.lsr_factor)
        fine = torch.where(valid, fine, 0.0)  # unobserved target pixels (masked below) must not carry NaN into sums
        nlm = masked_mse(self.nlm(coarse), lsr_fine, defined)
        sr = masked_mse(self.sr(lsr_fine), fine, valid & defined)
        return {"loss": nlm + sr, "nlm": nlm.detach(), "sr": sr.detach()}
