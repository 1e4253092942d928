"""1-D k-means on the valid pixels of a fine image: the land-cover stand-in for `fsdaf` and `ubdf`.

The published methods use ISODATA or a supervised map whose reflectance thresholds are meaningless in kelvin; a
deterministic 1-D k-means gives temperature classes with no randomness and identical labels on CPU and GPU.
"""

from __future__ import annotations

import torch

MAX_ITERATIONS = 50


def kmeans_1d(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes of the finite pixels of x: labels (same shape, int64, −1 where x is not finite) and sorted centres.

    Centres start at the (j − ½)/k quantiles, iterate at most 50 times or until labels are stable, and classes
    that end up empty are dropped, so labels run 0..len(centres)−1 in increasing temperature.
    """
    if k < 1:
        raise ValueError(f"n_classes must be >= 1, got {k}")
    valid = torch.isfinite(x)
    labels = torch.full(x.shape, -1, dtype=torch.long, device=x.device)
    v = x[valid].to(torch.float64)
    if v.numel() == 0:
        return labels, v.new_empty(0)
    q = (torch.arange(k, dtype=torch.float64, device=x.device) + 0.5) / k
    centres = torch.quantile(v, q).unique()  # sorted; equal starting centres collapse
    assign = None
    for _ in range(MAX_ITERATIONS):
        new = torch.bucketize(v, (centres[1:] + centres[:-1]) / 2)  # nearest centre; a midpoint goes to the lower
        if assign is not None and torch.equal(new, assign):
            break
        counts = torch.bincount(new, minlength=centres.numel())
        sums = torch.bincount(new, weights=v, minlength=centres.numel())
        keep = counts > 0
        assign = (torch.cumsum(keep, 0) - 1)[new]  # renumber past the dropped empty classes
        centres = sums[keep] / counts[keep]
    labels[valid] = assign
    return labels, centres
