"""The coarse block grid: s × s fine pixels per MODIS-sized block, anchored at the scene origin.

`coarse`, `fsdaf`, `fitfc` and `ubdf` reason per coarse pixel. The MODIS image reaches them already resampled onto the
fine grid, so the blocks are rebuilt here: anchored at the scene origin (a crop passes its offset in `meta`), partial
edge blocks kept, a block's value is the mean of its valid pixels and needs at least half of them valid. Upsampling
back to the fine grid is torch bicubic with `align_corners=False`, so block values sit at footprint centres.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._windows import reflect_pad

MIN_VALID_FRACTION = 0.5


class BlockGrid:
    """Blocks of `s` fine pixels over an (H, W) image whose top-left pixel is at `offset` in the scene."""

    def __init__(self, s: int, height: int, width: int, offset: tuple[int, int] = (0, 0)):
        if int(s) != s or s < 1:
            raise ValueError(f"coarse_block must be a positive integer (fine pixels per coarse pixel), got {s}")
        self.s = int(s)
        self.height, self.width = int(height), int(width)
        self.phase = (int(offset[0]) % self.s, int(offset[1]) % self.s)
        self.rows = math.ceil((self.phase[0] + self.height) / self.s)
        self.cols = math.ceil((self.phase[1] + self.width) / self.s)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def _blocked(self, x: torch.Tensor, fill) -> torch.Tensor:
        """(rows, s, cols, s) view of x placed on the full block footprint, `fill` outside the image."""
        s, (pr, pc) = self.s, self.phase
        full = x.new_full((self.rows * s, self.cols * s), fill)
        full[pr : pr + self.height, pc : pc + self.width] = x
        return full.reshape(self.rows, s, self.cols, s)

    def sums(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 sum of x over the valid pixels of each block, and their count."""
        xv = torch.where(valid, x.to(torch.float64), 0.0)
        return self._blocked(xv, 0.0).sum(dim=(1, 3)), self.counts(valid)

    def pixel_counts(self, device=None) -> torch.Tensor:
        """Number of in-image pixels of each block (partial edge blocks have fewer)."""
        ones = torch.ones(self.height, self.width, dtype=torch.float64, device=device)
        return self._blocked(ones, 0.0).sum(dim=(1, 3))

    def counts(self, mask: torch.Tensor) -> torch.Tensor:
        """Number of True pixels of each block (float64)."""
        return self._blocked(mask.to(torch.float64), 0.0).sum(dim=(1, 3))

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
        s, (pr, pc) = self.s, self.phase
        full = blocks.repeat_interleave(s, 0).repeat_interleave(s, 1)
        return full[pr : pr + self.height, pc : pc + self.width]

    def upsample(self, blocks: torch.Tensor) -> torch.Tensor:
        """Bicubic (align_corners=False) from block values to the fine grid; the block grid is reflected by 2 blocks
        so the cubic kernel sees mirrored blocks at the scene edge, as every window does."""
        s, (pr, pc) = self.s, self.phase
        padded = reflect_pad(blocks.to(torch.float64), 2)
        size = (padded.shape[0] * s, padded.shape[1] * s)
        up = F.interpolate(padded[None, None], size=size, mode="bicubic", align_corners=False)[0, 0]
        return up[2 * s + pr : 2 * s + pr + self.height, 2 * s + pc : 2 * s + pc + self.width]

    def centres(self) -> torch.Tensor:
        """(rows, cols, 2) float64 (row, col) centre of each block's in-image footprint, pixel centres at +0.5."""
        s, (pr, pc) = self.s, self.phase

        def axis(n_blocks, phase, length):
            start = (torch.arange(n_blocks, dtype=torch.float64) * s - phase).clamp(min=0)
            stop = (torch.arange(1, n_blocks + 1, dtype=torch.float64) * s - phase).clamp(max=length)
            return (start + stop) / 2

        r, c = axis(self.rows, pr, self.height), axis(self.cols, pc, self.width)
        return torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1)


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
