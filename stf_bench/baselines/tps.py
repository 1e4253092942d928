"""Thin-plate spline interpolation in float64: FSDAF's spatial prediction from the coarse block means.

f(p) = a0 + a1·row + a2·col + Σ_i w_i φ(|p − p_i|), φ(r) = r² log r, with Σ w_i = 0 and Σ w_i p_i = 0. The spline
passes through the data and reproduces any plane exactly. The kernel is evaluated in row chunks because the full
(pixels × centres) matrix of a 950 × 950 scene would take about 3 GB.
"""

from __future__ import annotations

import torch


def _kernel(r2: torch.Tensor) -> torch.Tensor:
    """φ as a function of r²: ½ r² log r², 0 at r = 0."""
    return torch.where(r2 > 0, 0.5 * r2 * torch.log(r2.clamp(min=1e-300)), 0.0)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact pairwise squared distances, for the fit, whose kernel matrix needs its zeros exactly zero."""
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


class ThinPlateSpline:
    """Fit through points (n, 2) (row, col) with values (n,); evaluate on a pixel grid."""

    def __init__(self, points: torch.Tensor, values: torch.Tensor, scale: float = 1.0):
        # coordinates are divided by `scale` for conditioning; the spline itself does not change with scale
        self.scale = float(scale)
        p = points.to(torch.float64) / self.scale
        n = p.shape[0]
        if n == 0:
            raise ValueError("thin-plate spline: no valid points to interpolate")
        a = torch.zeros(n + 3, n + 3, dtype=torch.float64, device=p.device)
        a[:n, :n] = _kernel(_squared_distances(p, p))
        poly = torch.cat([torch.ones(n, 1, dtype=torch.float64, device=p.device), p], dim=1)
        a[:n, n:] = poly
        a[n:, :n] = poly.T
        b = torch.cat([values.to(torch.float64), torch.zeros(3, dtype=torch.float64, device=p.device)])[:, None]
        coef, info = torch.linalg.solve_ex(a, b)
        if int(info) != 0 or not torch.isfinite(coef).all():  # fewer than 3 points or all on a line
            coef = torch.linalg.lstsq(a.cpu(), b.cpu(), driver="gelsd").solution.to(p.device)
        self.points, self.coef = p, coef[:, 0]

    def evaluate_grid(self, height: int, width: int, chunk_entries: int = 2**22) -> torch.Tensor:
        """Values at the pixel centres (row + 0.5, col + 0.5) of an (height, width) grid."""
        n = self.points.shape[0]
        w, affine = self.coef[:n], self.coef[n:]
        dev = self.points.device
        rows_per_chunk = max(1, chunk_entries // (n * width))
        out = torch.empty(height, width, dtype=torch.float64, device=dev)
        cols = (torch.arange(width, dtype=torch.float64, device=dev) + 0.5) / self.scale
        for r0 in range(0, height, rows_per_chunk):
            r1 = min(height, r0 + rows_per_chunk)
            rows = (torch.arange(r0, r1, dtype=torch.float64, device=dev) + 0.5) / self.scale
            q = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)
            # |q|² + |p|² − 2 q·p: a matmul instead of a (pixels × centres × 2) temporary; float64 keeps it exact to
            # ~1e-12 px², and φ near r = 0 is ~1e-11 K
            r2 = (q * q).sum(1, keepdim=True) + (self.points**2).sum(1) - 2.0 * q @ self.points.T
            val = _kernel(r2.clamp_(min=0.0)) @ w + affine[0] + q @ affine[1:]
            out[r0:r1] = val.reshape(r1 - r0, width)
        return out
