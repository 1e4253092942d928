"""Torch SLIC superpixels (Achanta et al., 2012) on a one-band image, and per-object means by scatter-add.

Batched and vectorized: each pixel is compared only with the seeds of the 3x3 grid cells around its own cell (the
local search of SLIC), so the cost is 9 distances per pixel and iteration at any image size. Segmentation is a
discrete assignment: it runs without gradient. Labels index the seed grid (row-major), so a label can be empty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def slic(image: torch.Tensor, grid: int = 16, iterations: int = 5, value_scale: float = 0.1,
         space_scale: float | None = None) -> torch.Tensor:
    """(B,1,H,W) -> (B,H,W) int64 labels in [0, ceil(H/grid) * ceil(W/grid)).

    Distance sqrt((dv / value_scale)^2 + (dxy / space_scale)^2), space_scale defaulting to the grid step. Seeds start at
    the cell centres with the cell's mean value; each iteration assigns every pixel to its nearest seed among the 3x3
    neighbouring cells, then moves every non-empty seed to its pixels' mean value and position (an empty seed stays).
    """
    if image.dim() != 4 or image.shape[1] != 1:
        raise ValueError(f"slic expects a (B,1,H,W) image, got {tuple(image.shape)}")
    if iterations < 1:
        raise ValueError(f"slic needs at least one iteration, got {iterations}")
    space_scale = float(grid if space_scale is None else space_scale)
    b, _, h, w = image.shape
    ny, nx = -(-h // grid), -(-w // grid)
    x = image[:, 0].float()
    dev = x.device
    ys = torch.arange(h, device=dev, dtype=x.dtype)
    xs = torch.arange(w, device=dev, dtype=x.dtype)
    cell_y, cell_x = torch.arange(h, device=dev) // grid, torch.arange(w, device=dev) // grid

    seed_v = F.avg_pool2d(image.float(), grid, ceil_mode=True)[:, 0]  # (B, ny, nx); ceil cells average their pixels
    seed_y, seed_x = (_cell_centres(n, grid, size).to(dev, x.dtype) for n, size in ((ny, h), (nx, w)))
    seed_y = seed_y[None, :, None].expand(b, ny, nx).contiguous()
    seed_x = seed_x[None, None, :].expand(b, ny, nx).contiguous()

    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for _ in range(iterations):
        best = torch.full((b, h, w), float("inf"), device=dev, dtype=x.dtype)
        labels = torch.zeros((b, h, w), device=dev, dtype=torch.long)
        for dy, dx in offsets:
            ny_idx, nx_idx = cell_y + dy, cell_x + dx
            ok = ((ny_idx >= 0) & (ny_idx < ny))[:, None] & ((nx_idx >= 0) & (nx_idx < nx))[None, :]
            iy, ix = ny_idx.clamp(0, ny - 1), nx_idx.clamp(0, nx - 1)
            sv = seed_v[:, iy][:, :, ix]
            sy = seed_y[:, iy][:, :, ix]
            sx = seed_x[:, iy][:, :, ix]
            dist = ((x - sv) / value_scale) ** 2 + ((ys[:, None] - sy) ** 2 + (xs[None, :] - sx) ** 2) / space_scale**2
            dist = torch.where(ok, dist, float("inf"))
            closer = dist < best
            best = torch.where(closer, dist, best)
            labels = torch.where(closer, (iy[:, None] * nx + ix[None, :]).expand(b, h, w), labels)
        count = object_sum(torch.ones_like(x), labels, ny * nx)
        keep = count > 0
        for seed, field in ((seed_v, x), (seed_y, ys[:, None].expand(h, w)), (seed_x, xs[None, :].expand(h, w))):
            total = object_sum(field.expand(b, h, w), labels, ny * nx)
            seed.view(b, -1).copy_(torch.where(keep, total / count.clamp(min=1), seed.view(b, -1)))
    return labels


def _cell_centres(n: int, grid: int, length: int) -> torch.Tensor:
    """Centre of each grid cell's pixels (a partial last cell included): no pixel is equidistant from two seeds."""
    start = torch.arange(n) * grid
    return (start + (start + grid).clamp(max=length) - 1) / 2


def object_sum(values: torch.Tensor, labels: torch.Tensor, n_objects: int) -> torch.Tensor:
    """(B,H,W) values summed per label -> (B, n_objects), by scatter-add (differentiable in `values`)."""
    b = values.shape[0]
    flat = values.reshape(b, -1)
    return flat.new_zeros(b, n_objects).scatter_add(1, labels.reshape(b, -1), flat)


def object_mean(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) values -> each pixel's object mean, broadcast back to (B,1,H,W)."""
    b = values.shape[0]
    n = int(labels.max()) + 1
    lab = labels.reshape(b, -1)
    total = object_sum(values[:, 0], labels, n)
    count = object_sum(torch.ones_like(values[:, 0]), labels, n).clamp(min=1)
    return (total / count).gather(1, lab).view_as(values)
