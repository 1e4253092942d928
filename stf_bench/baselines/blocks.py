"""The coarse block grid: MODIS-sized blocks of fine pixels, anchored at the scene origin.

`coarse`, `fsdaf`, `fitfc` and `ubdf` reason per coarse pixel. The MODIS image reaches them already resampled onto the
fine grid, so the blocks are rebuilt here: anchored at the scene origin (a crop passes its offset in `meta`), partial
edge blocks kept, a block's value is the mean of its valid pixels and needs at least half of them valid. The block
size is the coarse pixel size on the fine grid, per axis and usually fractional (30.8 px for the STF-LST resize,
33.3 for 1 km over 30 m): block k of an axis covers scene pixels round(k·s) to round((k+1)·s) − 1, so blocks differ by
at most one pixel and never drift from the coarse pixels. Upsampling back to the fine grid is bicubic (torch's kernel,
a = −0.75) with block values at footprint centres, as `align_corners=False` places them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F

from ._windows import reflect_pad

MIN_VALID_FRACTION = 0.5
CUBIC_A = -0.75  # torch's (and OpenCV's) bicubic kernel


def block_size(s) -> tuple[float, float]:
    """(rows, cols) fine pixels per coarse pixel from one number or a (rows, cols) pair; each must be >= 1."""
    pair = tuple(s) if isinstance(s, Sequence) and not isinstance(s, str) else (s, s)
    if len(pair) != 2 or not all(isinstance(v, Real) and math.isfinite(v) and v >= 1 for v in pair):
        raise ValueError(f"coarse_block must be a number >= 1 or a (rows, cols) pair of them (fine pixels per coarse "
                         f"pixel), got {s!r}")
    return float(pair[0]), float(pair[1])


class _Axis:
    """One axis of the block grid: which block each of the `length` pixels starting at scene pixel `offset` is in."""

    def __init__(self, s: float, offset: int, length: int):
        self.s, self.offset, self.length = s, int(offset), int(length)
        n = int(math.ceil((self.offset + self.length) / s)) + 2  # blocks up to beyond the image's end
        bounds = np.floor(np.arange(n + 1) * s + 0.5).astype(np.int64)  # scene pixel where block k starts
        scene = self.offset + np.arange(self.length)
        index = np.searchsorted(bounds, scene, side="right") - 1
        self.first = int(index[0])
        self.index = torch.as_tensor(index - self.first)  # per pixel, its block relative to the first one
        self.count = int(self.index[-1]) + 1
        self.bounds = bounds[self.first : self.first + self.count + 1] - self.offset  # in image pixels

    def onehot(self, device) -> torch.Tensor:
        """(blocks, pixels) float64 membership matrix: block sums are products with it."""
        m = torch.zeros(self.count, self.length, dtype=torch.float64, device=device)
        m[self.index.to(device), torch.arange(self.length, device=device)] = 1.0
        return m

    def cubic_weights(self, pad: int, device) -> torch.Tensor:
        """(pixels, blocks + 2·pad) bicubic weights from block values (reflect-padded by `pad`) to the pixels:
        pixel centre (p + 0.5) sits at (p + 0.5)/s − 0.5 in block units, as `align_corners=False` puts it."""
        pos = (torch.arange(self.length, dtype=torch.float64) + self.offset + 0.5) / self.s - 0.5 - self.first + pad
        base = torch.floor(pos)
        t = pos - base
        w = torch.zeros(self.length, self.count + 2 * pad, dtype=torch.float64)
        rows = torch.arange(self.length)
        for tap, d in zip(range(-1, 3), (1 + t, t, 1 - t, 2 - t)):
            a = CUBIC_A
            k = torch.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a)
            col = (base.long() + tap).clamp(0, self.count + 2 * pad - 1)
            w.index_put_((rows, col), k, accumulate=True)
        return w.to(device)

    def centres(self) -> torch.Tensor:
        """Centre of each block's in-image footprint, pixel centres at +0.5."""
        b = torch.as_tensor(self.bounds, dtype=torch.float64).clamp(0, self.length)
        return (b[:-1] + b[1:]) / 2


class BlockGrid:
    """Blocks of `s` fine pixels (one number or (rows, cols)) over an (H, W) image whose top-left pixel is at
    `offset` in the scene."""

    def __init__(self, s, height: int, width: int, offset: tuple[int, int] = (0, 0)):
        self.size = block_size(s)
        self.height, self.width = int(height), int(width)
        self._r = _Axis(self.size[0], offset[0], self.height)
        self._c = _Axis(self.size[1], offset[1], self.width)
        self.rows, self.cols = self._r.count, self._c.count

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def s(self) -> float:
        """The mean block side in pixels (a length scale, e.g. for conditioning)."""
        return (self.size[0] + self.size[1]) / 2

    def _sum(self, x: torch.Tensor) -> torch.Tensor:
        """Float64 sum of x over each block."""
        return self._r.onehot(x.device) @ x.to(torch.float64) @ self._c.onehot(x.device).T

    def sums(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 sum of x over the valid pixels of each block, and their count."""
        return self._sum(torch.where(valid, x.to(torch.float64), 0.0)), self.counts(valid)

    def pixel_counts(self, device=None) -> torch.Tensor:
        """Number of in-image pixels of each block (partial edge blocks have fewer)."""
        r = torch.bincount(self._r.index, minlength=self.rows).to(device=device, dtype=torch.float64)
        c = torch.bincount(self._c.index, minlength=self.cols).to(device=device, dtype=torch.float64)
        return torch.outer(r, c)

    def counts(self, mask: torch.Tensor) -> torch.Tensor:
        """Number of True pixels of each block (float64)."""
        return self._sum(mask)

    def valid_fraction(self, valid: torch.Tensor) -> torch.Tensor:
        """Share of each block's in-image pixels that are valid."""
        return self.counts(valid) / self.pixel_counts(valid.device)

    def means(self, x: torch.Tensor, valid: torch.Tensor | None = None, min_fraction: float = MIN_VALID_FRACTION):
        """Float64 block means over valid pixels; NaN where fewer than `min_fraction` of the block is valid."""
        if valid is None:
            valid = torch.isfinite(x)
        total, n = self.sums(x, valid)
        mean = total / n.clamp(min=1)
        return torch.where(n >= min_fraction * self.pixel_counts(x.device) - 1e-9, mean, float("nan"))

    def spread(self, blocks: torch.Tensor) -> torch.Tensor:
        """Each fine pixel takes its block's value (nearest neighbour)."""
        return blocks[self._r.index.to(blocks.device)][:, self._c.index.to(blocks.device)]

    def upsample(self, blocks: torch.Tensor) -> torch.Tensor:
        """Bicubic from block values to the fine grid; the block grid is reflected by 2 blocks so the cubic kernel
        sees mirrored blocks at the scene edge, as every window does."""
        padded = reflect_pad(blocks.to(torch.float64), 2)
        return self._r.cubic_weights(2, blocks.device) @ padded @ self._c.cubic_weights(2, blocks.device).T

    def centres(self) -> torch.Tensor:
        """(rows, cols, 2) float64 (row, col) centre of each block's in-image footprint, pixel centres at +0.5."""
        return torch.stack(torch.meshgrid(self._r.centres(), self._c.centres(), indexing="ij"), dim=-1)


def fill_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """Fill NaN blocks with the mean of their valid 3 × 3 neighbours, repeatedly, until none is left (or none was
    valid to start with)."""
    b = blocks.clone()
    kernel = torch.ones(1, 1, 3, 3, dtype=b.dtype, device=b.device)
    while True:
        bad = torch.isnan(b)
        if not bad.any() or bad.all():
            return b
        valid = (~bad).to(b.dtype)
        total = F.conv2d(torch.where(bad, 0.0, b)[None, None], kernel, padding=1)[0, 0]
        count = F.conv2d(valid[None, None], kernel, padding=1)[0, 0]
        b = torch.where(bad & (count > 0), total / count.clamp(min=1), b)


def coarse_image(c2: torch.Tensor, grid: BlockGrid) -> torch.Tensor:
    """The `coarse` baseline: C2 block means, gaps filled, bicubic back to the fine grid, NaN where C2 is invalid."""
    up = grid.upsample(fill_blocks(grid.means(c2)))
    return torch.where(torch.isfinite(c2), up, float("nan")).to(torch.float32)
