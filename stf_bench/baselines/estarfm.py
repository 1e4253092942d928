"""`estarfm`: ESTARFM (Zhu et al. 2010, RSE 114:2610-2623), models.md part 3 §5. Two pairs.

Each reference date predicts F_k(c) + V·Σ W·(C2 − C_k) from candidates similar to c at both dates; V is the slope of
fine on coarse over the candidates when the data support it (else 1), and the two predictions are blended by how
little the coarse image changed since each date. `TwoPairMaps` holds what the unbiased variant (ubestarfm.py) shares.
"""

from __future__ import annotations

from functools import cached_property

import torch
from scipy import stats

from ._windows import Padded, Window, box_sum, row_tiles
from .base import ClassicalBaseline, FusionInputs, finite_std

TINY_DISTANCE = 1e-7  # added to the combined distance, as in the published code
TINY_CHANGE_K = 1e-10  # added to |mean coarse change| before inverting it into a date weight
DATES = ((0, "1"), (1, "3"))  # index into TwoPairMaps lists, and the accumulator suffix of each reference date


def similarity_loss(gaps: list[torch.Tensor], totals: list[torch.Tensor]) -> torch.Tensor:
    """1 − R with R = 1 − ½ Σ_k |F_k − C_k| / (F_k + C_k), from the gaps F_k − C_k and the absolute totals F_k + C_k;
    the published rule sets R = 0.5 when it leaves [−1, 1]. Computed as 1 − R directly so float32 keeps its ~1e-3
    size exact."""
    q = 0.5 * sum(g.abs() / t for g, t in zip(gaps, totals))
    return torch.where((q < 0) | (q > 2), 0.5, q)


class TwoPairMaps:
    """The maps both ESTARFM variants read, relative to the scene reference, with their reflected paddings.

    A pixel is valid when F1, C1, F3, C3 and C2 are all finite; invalid pixels hold NaN in `fine` (so they never pass
    a similarity test) and 0 elsewhere (so they add nothing to a masked sum).
    """

    def __init__(self, x: FusionInputs, w: int):
        (f1, c1), (f3, c3) = x.pairs
        c2 = x.coarse_tgt
        self.ref = ref = x.reference
        self.valid = valid = torch.isfinite(f1) & torch.isfinite(c1) & torch.isfinite(f3) & torch.isfinite(c3)
        valid &= torch.isfinite(c2)
        nan = torch.tensor(float("nan"), device=c2.device)
        self.fine = [torch.where(valid, f - ref, nan) for f in (f1, f3)]
        self.fine0 = [torch.where(valid, f - ref, 0.0) for f in (f1, f3)]
        self.coarse0 = [torch.where(valid, c - ref, 0.0) for c in (c1, c3)]
        self.change = [torch.where(valid, c2 - c, 0.0) for c in (c1, c3)]
        self.gap = [torch.where(valid, f - c, 0.0) for f, c in ((f1, c1), (f3, c3))]
        self.total = [torch.where(valid, f + c, 2.0 * ref) for f, c in ((f1, c1), (f3, c3))]  # absolute kelvin
        pad = lambda maps: [Padded(m, w) for m in maps]  # noqa: E731
        self.p_fine, self.p_fine0 = pad(self.fine), pad(self.fine0)
        self.p_coarse0, self.p_change = pad(self.coarse0), pad(self.change)
        self.w = w
        self.n_window = box_sum(valid, w)
        self.mean_change = [box_sum(d, w) / self.n_window for d in self.change]
        inv = [1.0 / (m.abs() + TINY_CHANGE_K) for m in self.mean_change]
        self.date_weight = [(i / (inv[0] + inv[1])).to(torch.float32) for i in inv]

    @cached_property
    def p_gap(self) -> list[Padded]:
        return [Padded(m, self.w) for m in self.gap]

    @cached_property
    def p_total(self) -> list[Padded]:
        return [Padded(m, self.w) for m in self.total]

    def window_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of a zero-filled map over the valid pixels of each window (float32)."""
        return (box_sum(x, self.w) / self.n_window).to(torch.float32)

    def candidates(self, r0: int, r1: int, o, centre: list[torch.Tensor], tau: list) -> torch.Tensor:
        """|F_k(i) − F_k(c)| < τ_k at both dates; a valid centre qualifies itself."""
        if o.is_centre:
            return self.valid[r0:r1]
        cand = (self.p_fine[0].shifted(r0, r1, o.dy, o.dx) - centre[0]).abs_() < tau[0]
        return cand & ((self.p_fine[1].shifted(r0, r1, o.dy, o.dx) - centre[1]).abs_() < tau[1])


class ESTARFM(ClassicalBaseline):
    pairs_required = 2

    def __init__(
        self,
        *,
        half_window: int,
        n_slices: int,
        min_candidates: int,
        value_range_k: tuple[float, float],
        v_min_change_k: float,
        v_max: float,
        p_max: float,
        **common,
    ):
        super().__init__(**common)
        lo, hi = value_range_k
        if not lo < hi or n_slices < 1 or not 0 < p_max < 1:
            raise ValueError(f"ESTARFM: need value_range_k lo < hi, n_slices >= 1, 0 < p_max < 1; got "
                             f"{value_range_k}, {n_slices}, {p_max}")
        self.window = Window(half_window)
        self.n_slices = int(n_slices)
        self.min_candidates = int(min_candidates)
        self.value_range_k = (float(lo), float(hi))
        self.v_min_change_k = float(v_min_change_k)
        self.v_max = float(v_max)
        self.p_max = float(p_max)

    def _t_critical(self, device) -> torch.Tensor:
        """|t| at which a two-sided slope test reaches p_max, indexed by degrees of freedom (inf below 1)."""
        df = torch.arange(2 * self.window.size + 1, dtype=torch.float64)
        crit = torch.as_tensor(stats.t.ppf(1.0 - self.p_max / 2.0, df.clamp(min=1).numpy()), dtype=torch.float64)
        crit[0] = float("inf")
        return crit.to(device=device, dtype=torch.float32)

    def predict(self, x: FusionInputs) -> torch.Tensor:
        w = self.window.w
        height, width = x.shape
        maps = TwoPairMaps(x, w)
        tau = [2.0 * finite_std(f) / self.n_slices for f, _ in x.pairs]
        loss = Padded(similarity_loss(maps.gap, maps.total), w)
        t_crit = self._t_critical(x.coarse_tgt.device)
        dist_factor = [1.0 + o.distance / max(w, 1) for o in self.window.offsets]
        out = torch.empty(height, width, device=x.coarse_tgt.device)
        for r0, r1 in row_tiles(height, self.rows_per_tile(30 * 4 * width, height)):
            f_c = [f[r0:r1] for f in maps.fine]
            f0_c, c1_c = maps.fine0[0][r0:r1], maps.coarse0[0][r0:r1]
            acc = {k: torch.zeros(r1 - r0, width, device=out.device)
                   for k in ("n", "w", "wd1", "wd3", "wf1", "wf3", "x1", "x3", "y", "xy", "xx", "yy")}
            for o, d in zip(self.window.offsets, dist_factor):
                cand = maps.candidates(r0, r1, o, f_c, tau).to(torch.float32)
                wgt = cand / (loss.shifted(r0, r1, o.dy, o.dx) * d + TINY_DISTANCE)
                acc["n"] += cand
                acc["w"] += wgt
                for k, key in DATES:
                    acc["wd" + key].addcmul_(wgt, maps.p_change[k].shifted(r0, r1, o.dy, o.dx))
                    acc["wf" + key].addcmul_(wgt, maps.p_fine0[k].shifted(r0, r1, o.dy, o.dx))
                    # regression of fine on coarse, both dates pooled, centred on the centre's (C1, F1)
                    xk = (maps.p_coarse0[k].shifted(r0, r1, o.dy, o.dx) - c1_c).mul_(cand)
                    yk = (maps.p_fine0[k].shifted(r0, r1, o.dy, o.dx) - f0_c).mul_(cand)
                    acc["x" + key] += xk
                    acc["y"] += yk
                    acc["xy"].addcmul_(xk, yk)
                    acc["xx"].addcmul_(xk, xk)
                    acc["yy"].addcmul_(yk, yk)
            v = self._conversion(acc, t_crit)
            tw = [t[r0:r1] for t in maps.date_weight]
            pred = sum(tw[k] * (f_c[k] + v * acc["wd" + key] / acc["w"]) for k, key in DATES)
            fine_only = sum(tw[k] * acc["wf" + key] / acc["w"] for k, key in DATES)
            lo, hi = self.value_range_k
            absolute = pred + maps.ref
            pred = torch.where((absolute <= lo) | (absolute >= hi), fine_only, pred)
            few = sum(tw[k] * (f_c[k] + maps.mean_change[k][r0:r1].to(torch.float32)) for k in range(2))
            pred = torch.where(acc["n"] < self.min_candidates, few, pred)
            out[r0:r1] = torch.where(maps.valid[r0:r1], pred, float("nan"))
        return out + maps.ref

    def _conversion(self, acc: dict, t_crit: torch.Tensor) -> torch.Tensor:
        """V: the pooled fine-on-coarse slope where it is supported (coarse change, significance, 0 < V <= v_max)."""
        n = acc["n"]
        big_n = 2.0 * n
        sxx = acc["xx"] - (acc["x1"] + acc["x3"]) ** 2 / big_n
        sxy = acc["xy"] - (acc["x1"] + acc["x3"]) * acc["y"] / big_n
        syy = acc["yy"] - acc["y"] ** 2 / big_n
        slope = sxy / sxx
        df = (big_n - 2.0).clamp(min=0)
        sse = (syy - slope * sxy).clamp(min=0)
        t_abs = (slope.abs() * torch.sqrt(sxx * df / sse)).nan_to_num(nan=0.0)
        significant = t_abs >= t_crit[df.long().clamp(max=t_crit.numel() - 1)]
        changed = ((acc["x1"] - acc["x3"]) / n).abs() >= self.v_min_change_k
        keep = changed & significant & (slope > 0) & (slope <= self.v_max) & (n >= self.min_candidates)
        return torch.where(keep, slope, 1.0)
