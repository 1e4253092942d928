"""`fitfc`: Fit-FC (Wang & Atkinson 2018, RSE 204:31-42), models.md part 3 §8. One pair.

Regression model fitting (RM): a local linear map c2 ≈ a·c1 + b between the coarse blocks of the two dates, applied
to F1; its coarse residual is added back bicubically; spatial filtering (SF) then averages the result over each
pixel's most similar neighbours in F1. The ridge towards slope 1 keeps near-uniform LST windows from producing wild
slopes that would amplify the texture of F1.
"""

from __future__ import annotations

import torch

from ._windows import Padded, Window, most_similar, reflect_pad, row_tiles
from .base import ClassicalBaseline, FusionInputs
from .blocks import fill_blocks

MIN_VARIANCE_K2 = 1e-9  # below this (var + ridge) the slope falls back to 1


def local_regression(c1: torch.Tensor, c2: torch.Tensor, radius: int, ridge: float):
    """Per block, a and b of c2 ≈ a·c1 + b over the valid blocks of the (2·radius+1)² neighbourhood (reflected)."""
    ok = torch.isfinite(c1) & torch.isfinite(c2)
    x, y, m = (reflect_pad(torch.where(ok, v, 0.0), radius) for v in (c1, c2, ok.to(c1.dtype)))
    rows, cols = c1.shape
    sums = [torch.zeros_like(c1) for _ in range(5)]
    k = 2 * radius + 1
    for dy in range(k):
        for dx in range(k):
            sl = (slice(dy, dy + rows), slice(dx, dx + cols))
            xs, ys = x[sl], y[sl]
            for s, v in zip(sums, (m[sl], xs, ys, xs * xs, xs * ys)):
                s += v
    n, sx, sy, sxx, sxy = sums
    mx, my = sx / n, sy / n
    var, cov = sxx / n - mx * mx, sxy / n - mx * my
    a = torch.where(var + ridge < MIN_VARIANCE_K2, 1.0, (cov + ridge) / (var + ridge))
    b = my - a * mx
    none = n == 0
    return torch.where(none, float("nan"), a), torch.where(none, float("nan"), b)


class FitFC(ClassicalBaseline):
    pairs_required = 1

    def __init__(
        self,
        *,
        rm_radius_blocks: int,
        rm_ridge_k2: float,
        half_window: int,
        num_similar: int,
        A_px: float,
        **common,
    ):
        super().__init__(**common)
        if rm_radius_blocks < 0 or rm_ridge_k2 < 0 or num_similar < 1 or A_px <= 0:
            raise ValueError(f"FitFC: need rm_radius_blocks >= 0, rm_ridge_k2 >= 0, num_similar >= 1, A_px > 0; got "
                             f"{rm_radius_blocks}, {rm_ridge_k2}, {num_similar}, {A_px}")
        self.rm_radius_blocks = int(rm_radius_blocks)
        self.rm_ridge_k2 = float(rm_ridge_k2)
        self.window = Window(half_window)
        self.num_similar = int(num_similar)
        self.A_px = float(A_px)

    def regression_model(self, x: FusionInputs, valid: torch.Tensor) -> torch.Tensor:
        """Z = a·F1 + b + up(ρ) in float64, with a, b spread over their block and up the `coarse` operator."""
        grid = x.block_grid()
        c1_b, c2_b = grid.means(x.coarse_ref, valid), grid.means(x.coarse_tgt, valid)
        a, b = local_regression(c1_b, c2_b, self.rm_radius_blocks, self.rm_ridge_k2)
        rho = grid.upsample(fill_blocks(c2_b - (a * c1_b + b)))
        return grid.spread(a) * x.fine_ref.to(torch.float64) + grid.spread(b) + rho

    def predict(self, x: FusionInputs) -> torch.Tensor:
        valid = torch.isfinite(x.fine_ref) & torch.isfinite(x.coarse_ref) & torch.isfinite(x.coarse_tgt)
        ref, w = x.reference, self.window.w
        z = self.regression_model(x, valid)
        valid &= torch.isfinite(z)
        height, width = x.shape
        fine = torch.where(valid, x.fine_ref - ref, float("nan"))
        p_fine, p_z = Padded(fine, w), Padded(torch.where(valid, z - ref, 0.0).to(torch.float32), w)
        inv_d = 1.0 / (1.0 + self.window.distances(fine.device) / self.A_px)
        out = torch.empty(height, width, device=fine.device)
        bytes_per_row = 24.0 * width * self.window.size
        for r0, r1 in row_tiles(height, self.rows_per_tile(bytes_per_row, height)):
            pos, ok = most_similar(p_fine, fine, r0, r1, self.window, self.num_similar)
            weight = torch.where(ok, inv_d[pos], 0.0)
            z_i = p_z.take(p_fine.window_index(r0, r1, w, pos))
            out[r0:r1] = (weight * z_i).sum(-1) / weight.sum(-1)
        return torch.where(valid, out + ref, float("nan"))
