"""`ubestarfm`: unbiased ESTARFM (Yu et al. 2023, RSE 297:113784), models.md part 3 §6. Two pairs, LST-specific.

ESTARFM with a local bias correction: in every window the fine values are moved to the coarse mean level of the
candidates, F'_k = F_k − mean_cand F_k + mean_cand C_k, and V = 1. The prediction therefore follows the MODIS level at
t2, removing a constant MODIS − Landsat offset that plain ESTARFM carries into its output. Thresholds are local:
the sample standard deviation of F_k in fixed 200 × 200 px blocks, as in the authors' code (`yuyi13/ubESTARFM`).
"""

from __future__ import annotations

import torch

from ._windows import Window, row_tiles
from .base import ClassicalBaseline, FusionInputs
from .blocks import BlockGrid
from .estarfm import DATES, TINY_DISTANCE, TwoPairMaps, similarity_loss


def block_sample_std(x: torch.Tensor, grid: BlockGrid) -> torch.Tensor:
    """Per-pixel sample standard deviation (ddof 1) of the finite x in the pixel's block; NaN below 2 pixels."""
    valid = torch.isfinite(x)
    total, n = grid.sums(x, valid)
    total2, _ = grid.sums(x.to(torch.float64) ** 2, valid)
    var = (total2 - total**2 / n.clamp(min=1)) / (n - 1).clamp(min=1)
    std = torch.where(n >= 2, var.clamp(min=0).sqrt(), float("nan"))
    return grid.spread(std).to(torch.float32)


class UBESTARFM(ClassicalBaseline):
    pairs_required = 2

    def __init__(
        self,
        *,
        half_window: int,
        value_range_k: tuple[float, float],
        threshold_block_px: int,
        min_candidates: int,
        **common,
    ):
        super().__init__(**common)
        lo, hi = value_range_k
        if not lo < hi or threshold_block_px < 2:
            raise ValueError(f"UBESTARFM: need value_range_k lo < hi and threshold_block_px >= 2; got "
                             f"{value_range_k}, {threshold_block_px}")
        self.window = Window(half_window)
        self.value_range_k = (float(lo), float(hi))
        self.threshold_block_px = int(threshold_block_px)
        self.min_candidates = int(min_candidates)

    def predict(self, x: FusionInputs) -> torch.Tensor:
        w = self.window.w
        height, width = x.shape
        maps = TwoPairMaps(x, w)
        grid = BlockGrid(self.threshold_block_px, height, width, x.offset)
        tau = [block_sample_std(f, grid) for f, _ in x.pairs]
        dist_factor = [1.0 + o.distance / max(w, 1) for o in self.window.offsets]
        few_pred = self._few_candidates(maps)
        out = torch.empty(height, width, device=x.coarse_tgt.device)
        for r0, r1 in row_tiles(height, self.rows_per_tile(24 * 4 * width, height)):
            f_c = [f[r0:r1] for f in maps.fine]
            tau_c = [t[r0:r1] for t in tau]
            zeros = lambda: torch.zeros(r1 - r0, width, device=out.device)  # noqa: E731
            # pass 1: candidate counts and means, which set the local bias correction
            n, sum_f, sum_c = zeros(), [zeros(), zeros()], [zeros(), zeros()]
            for o in self.window.offsets:
                cand = maps.candidates(r0, r1, o, f_c, tau_c).to(torch.float32)
                n += cand
                for k, _ in DATES:
                    sum_f[k].addcmul_(cand, maps.p_fine0[k].shifted(r0, r1, o.dy, o.dx))
                    sum_c[k].addcmul_(cand, maps.p_coarse0[k].shifted(r0, r1, o.dy, o.dx))
            shift = [(sum_c[k] - sum_f[k]) / n for k, _ in DATES]
            # pass 2: weights from the bias-corrected similarity
            acc = {k: zeros() for k in ("w", "wd1", "wd3", "wf1", "wf3")}
            for o, d in zip(self.window.offsets, dist_factor):
                cand = maps.candidates(r0, r1, o, f_c, tau_c)
                # F'_k − C_k and F'_k + C_k: the shift moves the fine value, the coarse one stays
                gaps = [maps.p_gap[k].shifted(r0, r1, o.dy, o.dx) + shift[k] for k, _ in DATES]
                totals = [maps.p_total[k].shifted(r0, r1, o.dy, o.dx) + shift[k] for k, _ in DATES]
                loss = similarity_loss(gaps, totals)
                wgt = torch.where(cand, 1.0 / (loss * d + TINY_DISTANCE), 0.0)
                acc["w"] += wgt
                for k, key in DATES:
                    acc["wd" + key].addcmul_(wgt, maps.p_change[k].shifted(r0, r1, o.dy, o.dx))
                    acc["wf" + key].addcmul_(wgt, maps.p_fine0[k].shifted(r0, r1, o.dy, o.dx))
            tw = [t[r0:r1] for t in maps.date_weight]
            pred = sum(tw[k] * (f_c[k] + shift[k] + acc["wd" + key] / acc["w"]) for k, key in DATES)
            fine_only = sum(tw[k] * (acc["wf" + key] / acc["w"] + shift[k]) for k, key in DATES)
            lo, hi = self.value_range_k
            absolute = pred + maps.ref
            pred = torch.where((absolute <= lo) | (absolute >= hi), fine_only, pred)
            pred = torch.where(n < self.min_candidates, few_pred[r0:r1], pred)
            out[r0:r1] = torch.where(maps.valid[r0:r1], pred, float("nan"))
        return out + maps.ref

    def _few_candidates(self, maps: TwoPairMaps) -> torch.Tensor:
        """Per date F_k(c) − mean_win F_k + mean_win C_k + mean_win(C2 − C_k), blended by the date weights."""
        pred = 0.0
        for k in range(2):
            level = maps.window_mean(maps.coarse0[k]) - maps.window_mean(maps.fine0[k])
            change = maps.mean_change[k].to(torch.float32)
            pred = pred + maps.date_weight[k] * (maps.fine[k] + level + change)
        return pred
