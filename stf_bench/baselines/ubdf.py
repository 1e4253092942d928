"""`ubdf`: unmixing-based data fusion (Zurita-Milla et al. 2008, IEEE GRSL 5(3):453-457), models.md part 3 §10.

Classes from F1 (the shared 1-D k-means); each coarse block of C2 is unmixed into class temperatures over its
neighbourhood of blocks, and the block's fine pixels take the temperature of their class. No t1 coarse image is
needed. The output is constant per class within a block: blocky by nature, a floor for the other methods.
"""

from __future__ import annotations

import torch

from ._windows import reflect_pad
from .base import ClassicalBaseline, FusionInputs
from .kmeans import kmeans_1d

PROJECTED_GRADIENT_STEPS = 200


def bounded_ridge_lsq(
    a: torch.Tensor, b: torch.Tensor, prior: torch.Tensor, mu: torch.Tensor, bounds: tuple[float, float]
) -> torch.Tensor:
    """Batched min ‖A x − b‖² + μ ‖x − prior‖² subject to bounds, for (n, m, k) A.

    The normal equations solve it exactly when the solution is inside the bounds; the (rare) problems that leave
    them are finished by projected gradient from the clipped solution.
    """
    k = a.shape[-1]
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    q = a.transpose(-1, -2) @ a + mu[:, None, None] * eye
    rhs = (a.transpose(-1, -2) @ b[..., None])[..., 0] + mu[:, None] * prior[:, None]
    x = (torch.linalg.pinv(q, hermitian=True) @ rhs[..., None])[..., 0]
    lo, hi = bounds
    out = ((x < lo) | (x > hi)).any(-1)
    if out.any():
        qo, ro = q[out], rhs[out]
        step = 1.0 / torch.linalg.eigvalsh(qo)[:, -1:].clamp(min=1e-12)
        xo = x[out].clamp(lo, hi)
        for _ in range(PROJECTED_GRADIENT_STEPS):
            grad = (qo @ xo[..., None])[..., 0] - ro
            xo = (xo - step * grad).clamp(lo, hi)
        x[out] = xo
    return x


class UBDF(ClassicalBaseline):
    pairs_required = 1

    def __init__(self, *, n_classes: int, window_blocks: int, bounds_k: tuple[float, float], ridge_mu: float, **common):
        super().__init__(**common)
        lo, hi = bounds_k
        if n_classes < 1 or window_blocks < 1 or window_blocks % 2 == 0 or ridge_mu < 0 or not lo < hi:
            raise ValueError(f"UBDF: need n_classes >= 1, odd window_blocks >= 1, ridge_mu >= 0, bounds lo < hi; got "
                             f"{n_classes}, {window_blocks}, {ridge_mu}, {bounds_k}")
        self.n_classes = int(n_classes)
        self.window_blocks = int(window_blocks)
        self.bounds_k = (float(lo), float(hi))
        self.ridge_mu = float(ridge_mu)

    def class_temperatures(self, fractions: torch.Tensor, c2_b: torch.Tensor) -> torch.Tensor:
        """(classes, rows, cols) temperatures of each block, unmixed over its window of blocks (reflected)."""
        n_cls, rows, cols = fractions.shape
        radius = self.window_blocks // 2
        ok = torch.isfinite(c2_b)
        frac = reflect_pad(torch.where(ok, fractions, 0.0), radius)
        val = reflect_pad(torch.where(ok, c2_b, 0.0), radius)
        okp = reflect_pad(ok.to(fractions.dtype), radius)
        a, b, m = [], [], []
        for dy in range(self.window_blocks):
            for dx in range(self.window_blocks):
                sl = (slice(dy, dy + rows), slice(dx, dx + cols))
                a.append(frac[(slice(None),) + sl].reshape(n_cls, -1).T)
                b.append(val[sl].reshape(-1))
                m.append(okp[sl].reshape(-1))
        a, b, m = torch.stack(a, 1), torch.stack(b, 1), torch.stack(m, 1)  # (blocks, window, classes) ...
        n = m.sum(1)
        prior = b.sum(1) / n.clamp(min=1)
        x = bounded_ridge_lsq(a, b, prior, self.ridge_mu * n, self.bounds_k)
        x = torch.where((n > 0)[:, None], x, float("nan"))
        return x.T.reshape(n_cls, rows, cols)

    def predict(self, x: FusionInputs) -> torch.Tensor:
        valid = torch.isfinite(x.fine_ref) & torch.isfinite(x.coarse_tgt)
        labels, centres = kmeans_1d(torch.where(valid, x.fine_ref, float("nan")), self.n_classes)
        if centres.numel() == 0:
            return torch.full_like(x.fine_ref, float("nan"))
        grid = x.block_grid()
        c2_b = grid.means(x.coarse_tgt, valid)
        fractions = torch.stack([grid.counts(labels == c) for c in range(centres.numel())])
        fractions = fractions / grid.counts(valid).clamp(min=1)
        temps = self.class_temperatures(fractions, c2_b)
        per_pixel = torch.stack([grid.spread(t) for t in temps])
        pred = per_pixel.gather(0, labels.clamp(min=0)[None])[0]
        return torch.where(valid, pred, float("nan")).to(torch.float32)
