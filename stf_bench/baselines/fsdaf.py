"""`fsdaf`: FSDAF (Zhu et al. 2016, RSE 172:165-177), models.md part 3 §7. One pair.

Unmix the coarse change into per-class changes (temporal prediction), interpolate C2 with a thin-plate spline
(spatial prediction), hand each block's residual to its pixels where the spatial prediction says the temporal one
is wrong, then smooth the change over similar neighbours. Classes come from the shared 1-D k-means on F1.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import lsq_linear

from ._windows import Padded, Window, box_sum, most_similar, row_tiles
from .base import ClassicalBaseline, FusionInputs, finite_std
from .blocks import BlockGrid
from .kmeans import kmeans_1d
from .tps import ThinPlateSpline

PURE_MIN_FRACTION = 0.01  # a block must hold some of the class to count among its purest
UNMIX_MIN_VALID = 0.99  # only (nearly) complete blocks enter the unmixing
CHANGE_PERCENTILES = (0.1, 0.9)  # pure blocks outside these change quantiles are taken as land-cover change
MAX_RESIDUAL_WEIGHT = 10.0
TINY_WEIGHT = 1e-6


class FSDAF(ClassicalBaseline):
    pairs_required = 1

    def __init__(
        self,
        *,
        n_classes: int,
        num_pure: int,
        half_window: int,
        num_similar: int,
        value_range_k: tuple[float, float],
        **common,
    ):
        super().__init__(**common)
        lo, hi = value_range_k
        if n_classes < 1 or num_pure < 1 or num_similar < 1 or not lo < hi:
            raise ValueError(f"FSDAF: need n_classes, num_pure, num_similar >= 1 and value_range_k lo < hi; got "
                             f"{n_classes}, {num_pure}, {num_similar}, {value_range_k}")
        self.n_classes = int(n_classes)
        self.num_pure = int(num_pure)
        self.window = Window(half_window)
        self.num_similar = int(num_similar)
        self.value_range_k = (float(lo), float(hi))

    def predict(self, x: FusionInputs) -> torch.Tensor:
        f1, c1, c2 = x.fine_ref, x.coarse_ref, x.coarse_tgt
        valid = torch.isfinite(f1) & torch.isfinite(c1) & torch.isfinite(c2)
        grid = x.block_grid()
        labels, centres = kmeans_1d(torch.where(valid, f1, float("nan")), self.n_classes)
        n_cls = centres.numel()
        if n_cls == 0:  # nothing valid: every pixel goes to the fallback chain
            return torch.full_like(f1, float("nan"))
        # block statistics over the valid pixels
        valid_share = grid.valid_fraction(valid)
        change_b = grid.means(c2, valid) - grid.means(c1, valid)
        fractions = torch.stack([grid.counts(labels == c) for c in range(n_cls)]) / grid.counts(valid).clamp(min=1)
        class_change = self.class_changes(fractions, change_b, valid_share)
        # temporal prediction and its block residual
        f64 = f1.to(torch.float64)
        f_tp = torch.where(valid, f64 + class_change[labels.clamp(min=0)], float("nan"))
        residual = grid.spread(change_b - torch.einsum("cij,c->ij", fractions, class_change))
        residual = torch.where(valid, residual.nan_to_num(0.0), 0.0)  # no residual where the block is invalid
        # spatial prediction, homogeneity, residual distribution
        f_sp = self.spatial_prediction(grid, grid.means(c2, valid))
        homogeneity = self.homogeneity(labels, valid, n_cls)
        err = f_sp - f_tp
        err = torch.where(((residual <= 0) & (err > 0)) | ((residual > 0) & (err < 0)), 0.0, err)
        weight = torch.where(valid, err.abs() * homogeneity + residual.abs() * (1 - homogeneity) + TINY_WEIGHT, 0.0)
        weight = weight / grid.spread(grid.means(weight, valid, min_fraction=0.0))
        weight = torch.where(weight > MAX_RESIDUAL_WEIGHT, 1.0, weight)  # 1 = the block mean after normalizing
        weight = weight / grid.spread(grid.means(weight, valid, min_fraction=0.0))
        lo, hi = self.value_range_k
        low = max(min(float(c2[valid].min()), float(f_tp[valid].min())), lo)
        high = min(max(float(c2[valid].max()), float(f_tp[valid].max())), hi)
        change = (f_tp + weight * residual).clamp(low, high) - f64
        pred = self.smooth(x, valid, change.to(torch.float32), n_cls)
        delta = (f1 + (c2 - c1)).clamp(lo, hi)
        return torch.where((pred < lo) | (pred > hi), delta, pred)

    def class_changes(self, fractions: torch.Tensor, change_b: torch.Tensor, valid_share: torch.Tensor):
        """ΔF per class: bounded least squares ΔC = Σ f_c ΔF_c over each class's purest, unchanged blocks."""
        frac = fractions.cpu().numpy().reshape(fractions.shape[0], -1).T  # (blocks, classes)
        dc = change_b.cpu().numpy().ravel()
        ok_all = np.isfinite(dc)
        usable = ok_all & (valid_share.cpu().numpy().ravel() >= UNMIX_MIN_VALID)
        rows, target = [], []
        for c in range(frac.shape[1]):
            idx = np.flatnonzero(usable & (frac[:, c] > PURE_MIN_FRACTION))
            idx = idx[np.argsort(-frac[idx, c], kind="stable")][: self.num_pure]
            if idx.size == 0:
                continue
            q_lo, q_hi = np.quantile(dc[idx], CHANGE_PERCENTILES)
            idx = idx[(dc[idx] >= q_lo) & (dc[idx] <= q_hi)]
            rows.append(frac[idx])
            target.append(dc[idx])
        if not rows or not ok_all.any():
            return torch.full((frac.shape[1],), float("nan"), dtype=torch.float64, device=fractions.device)
        spread = dc[ok_all].std()
        lo, hi = dc[ok_all].min() - spread, dc[ok_all].max() + spread
        if hi <= lo:  # every block changed by the same amount
            solution = np.full(frac.shape[1], lo)
        else:
            solution = lsq_linear(np.concatenate(rows), np.concatenate(target), bounds=(lo, hi), method="bvls").x
        return torch.as_tensor(solution, dtype=torch.float64, device=fractions.device)

    def spatial_prediction(self, grid: BlockGrid, c2_b: torch.Tensor) -> torch.Tensor:
        """Thin-plate spline through the valid C2 block means at their block centres."""
        ok = torch.isfinite(c2_b)
        if not ok.any():
            return torch.full((grid.height, grid.width), float("nan"), dtype=torch.float64, device=c2_b.device)
        spline = ThinPlateSpline(grid.centres().to(c2_b.device)[ok], c2_b[ok], scale=grid.s)
        return spline.evaluate_grid(grid.height, grid.width)

    def homogeneity(self, labels: torch.Tensor, valid: torch.Tensor, n_cls: int) -> torch.Tensor:
        """Share of the valid window pixels that have the centre's class."""
        w = self.window.w
        n = box_sum(valid, w)
        same = torch.zeros_like(n)
        for c in range(n_cls):
            mask = labels == c
            same = torch.where(mask, box_sum(mask, w), same)
        return same / n.clamp(min=1)

    def smooth(self, x: FusionInputs, valid: torch.Tensor, change: torch.Tensor, n_cls: int) -> torch.Tensor:
        """F1(c) + Σ weight·ΔF(i) over the num_similar most similar candidates |F1(i) − F1(c)| < 2σ(F1)/classes."""
        ref, w = x.reference, self.window.w
        height, width = x.shape
        fine = torch.where(valid, x.fine_ref - ref, float("nan"))
        p_fine, p_change = Padded(fine, w), Padded(torch.where(valid, change, 0.0), w)
        threshold = 2.0 * finite_std(x.fine_ref) / n_cls
        dist = self.window.distances(fine.device)
        out = torch.empty(height, width, device=fine.device)
        bytes_per_row = 24.0 * width * self.window.size
        for r0, r1 in row_tiles(height, self.rows_per_tile(bytes_per_row, height)):
            pos, ok = most_similar(p_fine, fine, r0, r1, self.window, self.num_similar, threshold)
            index = p_fine.window_index(r0, r1, w, pos)
            f_i, centre = p_fine.take(index), fine[r0:r1, :, None]
            similarity = 1.0 + (f_i - centre).abs() / (centre + ref)
            weight = torch.where(ok, 1.0 / ((1.0 + dist[pos] / max(w, 1)) * similarity), 0.0)
            out[r0:r1] = centre[..., 0] + (weight * p_change.take(index)).sum(-1) / weight.sum(-1)
        return out + ref
