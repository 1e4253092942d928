"""SSIM of one prediction with more and more reference pixels missing at random, before and after the minimum-weight
rule of metrics.md (issue 8 item 3).

    python benchmarks/ssim_sparse_mask.py [--size 256] [--seed 0]

"before" averages every valid window centre (min_weight 0, the old rule); "after" only centres whose window holds at
least SSIM_MIN_WEIGHT of its Gaussian weight on valid pixels (NaN when none does). Exits 1 unless, as metrics.md
demands, the "after" value at 99 % missing is NaN or within 0.02 of the fully observed SSIM and an isolated valid
pixel is not scored. (With 80 % missing only a dozen centres qualify, so that value is a small, noisy sample.)
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from scipy.ndimage import gaussian_filter

from stf_bench.metrics import SSIM_MIN_WEIGHT, scene_metrics, ssim

L_K = 60.0
MISSING = (0.0, 0.5, 0.8, 0.95, 0.99)
TOLERANCE = 0.02


def scene(size: int, seed: int) -> np.ndarray:
    """A textured LST-like field in Kelvin: structure at a few pixels plus 0.3 K noise."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(size=(size, size)), 2.0)
    return 300.0 + 8.0 * smooth / smooth.std() + rng.normal(0.0, 0.3, (size, size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ref = scene(args.size, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    preds = {"blurred (σ 2 px)": gaussian_filter(ref, 2.0), "noisy (+3 K σ)": ref + rng.normal(0.0, 3.0, ref.shape)}
    ok = True
    print(f"SSIM, L = {L_K:g} K, {args.size}² px, pixels missing at random; after: min weight {SSIM_MIN_WEIGHT}")
    print(f"{'prediction':<18} {'missing':>7} {'before':>7} {'after':>7} {'centres':>8}")
    for name, pred in preds.items():
        full = ssim(pred, ref, L_K)
        for fraction in MISSING:
            observed = np.random.default_rng(args.seed + 2).random(ref.shape) >= fraction
            before = ssim(pred, ref, L_K, observed, min_weight=0.0)
            m = scene_metrics(pred, ref, observed, L_K)
            if fraction == 0.99:
                ok &= math.isnan(m["ssim"]) or abs(m["ssim"] - full) <= TOLERANCE
            print(f"{name:<18} {fraction:>7.0%} {before:>7.3f} {m['ssim']:>7.3f} {m['ssim_centres']:>8d}")
    observed = np.zeros(ref.shape, bool)
    observed[args.size // 2, args.size // 2] = True
    lone = scene_metrics(ref + 1.0, ref, observed, L_K)
    print(f"isolated valid pixel, 1 K error: before {ssim(ref + 1.0, ref, L_K, observed, min_weight=0.0):.5f}, "
          f"after {lone['ssim']} ({lone['ssim_centres']} centres)")
    ok &= math.isnan(lone["ssim"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
