"""`starfm`: STARFM (Gao et al. 2006, IEEE TGRS 44(8):2207-2218), models.md part 3 §4.

The target is a weighted mean of the `delta` predictions F_k + C2 − C_k of nearby pixels that resemble it in F_k,
weighted up where fine and coarse agree (small S), the coarse change is small (small T) and the pixel is near.
Uses every pair the sample carries; the weights are normalized jointly over the candidates of all pairs.
"""

from __future__ import annotations

import math

import torch

from ._windows import Padded, Window, row_tiles
from .base import ClassicalBaseline, FusionInputs, finite_std

LOG_SCALE_PER_K = 10.0  # B in ln(B·S + 1): puts kelvin differences in the range the log form was made for


class STARFM(ClassicalBaseline):
    pairs_required = 1

    def __init__(
        self,
        *,
        half_window: int,
        A_px: float,
        n_slices: int,
        sigma_fine_k: float,
        sigma_coarse_k: float,
        log_weight: bool,
        eps_k: float,
        **common,
    ):
        super().__init__(**common)
        if A_px <= 0 or n_slices < 1 or eps_k <= 0:
            raise ValueError(f"STARFM: need A_px > 0, n_slices >= 1, eps_k > 0; got {A_px}, {n_slices}, {eps_k}")
        self.window = Window(half_window)
        self.A_px = float(A_px)
        self.n_slices = int(n_slices)
        self.sigma_lm = math.hypot(sigma_fine_k, sigma_coarse_k)
        self.sigma_mm = math.sqrt(2.0) * sigma_coarse_k
        self.log_weight = bool(log_weight)
        self.eps_k = float(eps_k)

    def _inverse_distance(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """1 / (S̃·T̃), or its log form: the candidate-only part of the combined distance."""
        s, t = s.clamp(min=self.eps_k), t.clamp(min=self.eps_k)
        if self.log_weight:
            return 1.0 / (torch.log1p(LOG_SCALE_PER_K * s) * torch.log1p(LOG_SCALE_PER_K * t))
        return 1.0 / (s * t)

    def predict(self, x: FusionInputs) -> torch.Tensor:
        ref, w = x.reference, self.window.w
        height, width = x.shape
        maps = []
        for fine, coarse in x.pairs:
            valid = torch.isfinite(fine) & torch.isfinite(coarse) & torch.isfinite(x.coarse_tgt)
            s = (fine - coarse).abs()
            t = (x.coarse_tgt - coarse).abs()
            v = (fine - ref) + (x.coarse_tgt - coarse)
            tau = 2.0 * finite_std(fine) / self.n_slices
            nan = torch.tensor(float("nan"), device=fine.device)
            maps.append(
                dict(
                    valid=valid,
                    tau=tau,
                    fine=torch.where(valid, fine - ref, nan),  # NaN: never passes a similarity test
                    s=s,
                    t=t,
                    v=torch.where(valid, v, 0.0),
                    inv=torch.where(valid, self._inverse_distance(s, t), 0.0),
                )
            )
        padded = [{k: Padded(m[k], w) for k in ("fine", "s", "t", "v", "inv")} for m in maps]
        inv_d = [1.0 / (1.0 + o.distance / self.A_px) for o in self.window.offsets]
        rows = self.rows_per_tile(12 * 4 * width, height)
        out = torch.empty(height, width, device=x.coarse_tgt.device)
        for r0, r1 in row_tiles(height, rows):
            num = torch.zeros(r1 - r0, width, device=out.device)
            den = torch.zeros_like(num)
            for m, p in zip(maps, padded):
                fc = m["fine"][r0:r1]
                lo, hi = fc - m["tau"], fc + m["tau"]
                s_max, t_max = m["s"][r0:r1] + self.sigma_lm, m["t"][r0:r1] + self.sigma_mm
                for o, inv_d_o in zip(self.window.offsets, inv_d):
                    if o.is_centre:
                        cand = m["valid"][r0:r1]  # a valid centre qualifies itself
                    else:
                        f = p["fine"].shifted(r0, r1, o.dy, o.dx)
                        cand = (f >= lo) & (f <= hi)
                        cand &= p["s"].shifted(r0, r1, o.dy, o.dx) < s_max
                        cand &= p["t"].shifted(r0, r1, o.dy, o.dx) < t_max
                    wgt = torch.where(cand, p["inv"].shifted(r0, r1, o.dy, o.dx), 0.0)
                    den.add_(wgt, alpha=inv_d_o)
                    num.addcmul_(wgt, p["v"].shifted(r0, r1, o.dy, o.dx), value=inv_d_o)
            pred = num / den
            for m in reversed(maps):  # the paper's shortcut; the first pair that qualifies wins
                exact = m["valid"][r0:r1] & ((m["s"][r0:r1] < self.eps_k) | (m["t"][r0:r1] < self.eps_k))
                pred = torch.where(exact, m["v"][r0:r1], pred)
            out[r0:r1] = pred
        return out + ref
