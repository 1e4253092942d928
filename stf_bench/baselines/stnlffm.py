"""`stnlffm`: STNLFFM (Cheng et al. 2017, IEEE TGRS 55(8):4476-4488), models.md part 3 §9. Uses 1 or 2 pairs.

Each pixel gets a local linear map from C_k to C2 fitted over its similar pixels (pass 1, ridge towards slope 1),
applied to F_k: G_k = a·F_k + b. The prediction is a non-local mean of G_k over the similar pixels, weighted by how
well each candidate's coarse patch at t_k matches the target's coarse patch at t2 (pass 2).
"""

from __future__ import annotations

import math

import torch

from ._windows import Padded, Window, box_sum, row_tiles
from .base import ClassicalBaseline, FusionInputs, finite_std

MIN_REGRESSION_CANDIDATES = 6  # with fewer similar pixels, pass 1 fits over all valid window pixels
TINY_CHANGE_K = 1e-10
MIN_EXPONENT = -60.0


def patch_kernel(p: int) -> list[tuple[int, int, float]]:
    """Non-local-means kernel of a p × p patch: nested squares of radius r weighted 1/(2r+1)², normalized."""
    if p < 1 or p % 2 == 0:
        raise ValueError(f"patch_px must be odd and >= 1, got {p}")
    radius = p // 2
    weights = {}
    for oy in range(-radius, radius + 1):
        for ox in range(-radius, radius + 1):
            ring = max(abs(oy), abs(ox))
            weights[(oy, ox)] = sum(1.0 / (2 * r + 1) ** 2 for r in range(max(ring, 1), radius + 1)) if radius else 1.0
    total = sum(weights.values())
    return [(oy, ox, g / total) for (oy, ox), g in weights.items()]


class STNLFFM(ClassicalBaseline):
    pairs_required = 1

    def __init__(
        self,
        *,
        half_window: int,
        n_slices: int,
        sigma_fine_k: float,
        sigma_coarse_k: float,
        ridge_k2: float,
        h_k: float,
        patch_px: int,
        value_range_k: tuple[float, float],
        **common,
    ):
        super().__init__(**common)
        lo, hi = value_range_k
        if ridge_k2 <= 0 or h_k <= 0 or n_slices < 1 or not lo < hi:
            raise ValueError(f"STNLFFM: need ridge_k2 > 0, h_k > 0, n_slices >= 1, value_range_k lo < hi; got "
                             f"{ridge_k2}, {h_k}, {n_slices}, {value_range_k}")
        self.window = Window(half_window)
        self.n_slices = int(n_slices)
        self.sigma_lm = math.hypot(sigma_fine_k, sigma_coarse_k)
        self.sigma_mm = math.sqrt(2.0) * sigma_coarse_k
        self.ridge = float(ridge_k2)
        self.h2 = float(h_k) ** 2
        self.kernel = patch_kernel(int(patch_px))
        self.patch_radius = int(patch_px) // 2
        self.value_range_k = (float(lo), float(hi))

    def predict(self, x: FusionInputs) -> torch.Tensor:
        ref = x.reference
        blended, fine_only, weight_sum = 0.0, 0.0, 0.0
        for fine, coarse in x.pairs:
            pred_k, fine_k, t_k = self._one_pair(x, fine, coarse, ref)
            ok = torch.isfinite(pred_k)
            blended = blended + torch.where(ok, t_k * pred_k, 0.0)
            fine_only = fine_only + torch.where(ok, t_k * fine_k, 0.0)
            weight_sum = weight_sum + torch.where(ok, t_k, 0.0)
        pred = blended / weight_sum + ref
        lo, hi = self.value_range_k
        return torch.where((pred < lo) | (pred > hi), fine_only / weight_sum + ref, pred)

    def _one_pair(self, x: FusionInputs, fine: torch.Tensor, coarse: torch.Tensor, ref: float):
        """Σ w·G_k and Σ w·F_k over the candidates (relative to ref), and the date weight T_k (unnormalized)."""
        w, r = self.window.w, self.patch_radius
        height, width = x.shape
        c2 = x.coarse_tgt
        valid = torch.isfinite(fine) & torch.isfinite(coarse) & torch.isfinite(c2)
        nan = torch.tensor(float("nan"), device=c2.device)
        m = dict(
            fine=torch.where(valid, fine - ref, nan),
            fine0=torch.where(valid, fine - ref, 0.0),
            coarse=torch.where(valid, coarse - ref, 0.0),
            c2=torch.where(valid, c2 - ref, 0.0),
            s=(fine - coarse).abs(),
            t=(c2 - coarse).abs(),
        )
        p = {k: Padded(v, w) for k, v in m.items()}
        tau = 2.0 * finite_std(fine) / self.n_slices
        n_win = box_sum(valid, w)
        t_k = (n_win / (box_sum((c2 - coarse).abs().nan_to_num(0.0) * valid, w) + TINY_CHANGE_K * n_win)).float()
        rows = self.rows_per_tile(16 * 4 * width, height)
        gain = self._pass1(m, p, valid, tau, rows)
        p_gain = Padded(gain, w)
        p_coarse_patch = Padded(torch.where(valid, coarse - ref, nan), w + r)
        p_c2_patch = Padded(torch.where(valid, c2 - ref, nan), r)
        sum_g = torch.empty(height, width, device=c2.device)
        sum_f = torch.empty_like(sum_g)
        for r0, r1 in row_tiles(height, rows):
            cand_at = self._candidates(m, p, valid, tau, r0, r1)

            def distance(o):
                d = 0.0
                for oy, ox, g in self.kernel:
                    diff = p_coarse_patch.shifted(r0, r1, o.dy + r + oy, o.dx + r + ox)
                    diff = diff - p_c2_patch.shifted(r0, r1, r + oy, r + ox)
                    d = d + g * (diff * diff if len(self.kernel) == 1 else (diff * diff).nan_to_num(0.0))
                return d

            d_min = torch.full((r1 - r0, width), float("inf"), device=c2.device)
            for o in self.window.offsets:
                d_min = torch.minimum(d_min, torch.where(cand_at(o), distance(o), float("inf")))
            sw = torch.zeros_like(d_min)
            sg, sf = torch.zeros_like(sw), torch.zeros_like(sw)
            for o in self.window.offsets:
                cand = cand_at(o)
                # exponents below −60 only add < 1e-26 to a sum that holds 1; clamping them (and the non-candidates)
                # keeps torch.exp off its slow path for denormals, NaN and −inf
                arg = torch.where(cand, (d_min - distance(o)) / self.h2, MIN_EXPONENT).clamp_(min=MIN_EXPONENT)
                wgt = torch.where(cand, torch.exp(arg), 0.0)
                sw += wgt
                sg.addcmul_(wgt, p_gain.shifted(r0, r1, o.dy, o.dx))
                sf.addcmul_(wgt, p["fine0"].shifted(r0, r1, o.dy, o.dx))
            sum_g[r0:r1], sum_f[r0:r1] = sg / sw, sf / sw
        return sum_g, sum_f, t_k

    def _candidates(self, m: dict, p: dict, valid: torch.Tensor, tau: float, r0: int, r1: int):
        """The candidate test of one tile as a function of the window offset."""
        f_c = m["fine"][r0:r1]
        s_max = m["s"][r0:r1] + self.sigma_lm
        t_c = m["t"][r0:r1]
        valid_c = valid[r0:r1]

        def cand_at(o):
            if o.is_centre:
                return valid_c
            similar = (p["fine"].shifted(r0, r1, o.dy, o.dx) - f_c).abs_() <= tau
            agree = p["s"].shifted(r0, r1, o.dy, o.dx) < s_max
            agree |= (p["t"].shifted(r0, r1, o.dy, o.dx) - t_c).abs_() < self.sigma_mm
            return similar & agree

        return cand_at

    def _pass1(self, m: dict, p: dict, valid: torch.Tensor, tau: float, rows: int) -> torch.Tensor:
        """G_k = a·F_k + b (relative to ref), a and b fitted from C_k to C2 over each pixel's candidates."""
        w = self.window.w
        height, width = valid.shape
        # all valid window pixels, for pixels with too few candidates
        n_all = box_sum(valid, w)
        mx_all = box_sum(m["coarse"], w) / n_all
        my_all = box_sum(m["c2"], w) / n_all
        var_all = box_sum(m["coarse"].double() ** 2, w) / n_all - mx_all**2
        cov_all = box_sum(m["coarse"].double() * m["c2"], w) / n_all - mx_all * my_all
        gain = torch.empty(height, width, device=valid.device)
        for r0, r1 in row_tiles(height, rows):
            cand_at = self._candidates(m, p, valid, tau, r0, r1)
            x_c, y_c = m["coarse"][r0:r1], m["c2"][r0:r1]
            n, sx, sy, sxx, sxy = (torch.zeros(r1 - r0, width, device=valid.device) for _ in range(5))
            for o in self.window.offsets:
                cand = cand_at(o).to(torch.float32)
                xs = (p["coarse"].shifted(r0, r1, o.dy, o.dx) - x_c).mul_(cand)
                ys = (p["c2"].shifted(r0, r1, o.dy, o.dx) - y_c).mul_(cand)
                n += cand
                sx += xs
                sy += ys
                sxx.addcmul_(xs, xs)
                sxy.addcmul_(xs, ys)
            mx, my = sx / n, sy / n
            var, cov = sxx / n - mx * mx, sxy / n - mx * my
            few = n < MIN_REGRESSION_CANDIDATES
            mean_x = torch.where(few, mx_all[r0:r1].float(), x_c + mx)
            mean_y = torch.where(few, my_all[r0:r1].float(), y_c + my)
            var = torch.where(few, var_all[r0:r1].float(), var)
            cov = torch.where(few, cov_all[r0:r1].float(), cov)
            a = (cov + self.ridge) / (var + self.ridge)
            gain[r0:r1] = torch.where(valid[r0:r1], a * m["fine0"][r0:r1] + mean_y - a * mean_x, 0.0)
        return gain
