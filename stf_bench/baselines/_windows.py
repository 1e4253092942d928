"""Moving windows over a scene in row tiles, with reflection at the edges.

Two ways to visit a (2w+1)² window, both tile-invariant because every output pixel sees the same arithmetic:

- `Padded.shifted` + `Window.offsets`: loop over the window offsets and accumulate on (T, W) slabs. For window *sums*
  this is ~2x faster than unfolding (measured on a CPU) and needs O(T·W) memory per map, so a tile is the scene.
- `Padded.unfold`: the (T, W, 2w+1, 2w+1) strided view, for the "n most similar pixels" selections that need every
  window value of a pixel at once (`most_similar`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

RANK_STEP_K = 1e-7  # models.md §2: ties in |ΔF| resolve to the nearer window position, identically on CPU and GPU


def reflect_index(n: int, pad: int, device=None) -> torch.Tensor:
    """Indices of a length-n axis padded by `pad` on both sides, mirrored without repeating the edge pixel.

    Unlike torch's `reflect` mode this keeps reflecting when the pad is wider than the axis.
    """
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes of `x` by reflection (see `reflect_index`)."""
    if pad == 0:
        return x
    rows = reflect_index(x.shape[-2], pad, x.device)
    cols = reflect_index(x.shape[-1], pad, x.device)
    return x[..., rows, :][..., cols]


def box_sum(x: torch.Tensor, w: int) -> torch.Tensor:
    """Sum over the (2w+1)² reflected window of every pixel, in float64 (cumulative sums stay exact enough)."""
    k = 2 * w + 1
    c = reflect_pad(x.to(torch.float64), w)
    c = torch.nn.functional.pad(c.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def row_tiles(height: int, rows: int):
    """(r0, r1) bounds of consecutive tiles of at most `rows` output rows."""
    rows = max(1, int(rows))
    for r0 in range(0, height, rows):
        yield r0, min(height, r0 + rows)


@dataclass(frozen=True)
class Offset:
    """One window position: row and column shift (0..2w, w is the centre) and its distance from the centre."""

    dy: int
    dx: int
    distance: float
    is_centre: bool


class Window:
    """Geometry of a (2w+1)² window: offsets, Euclidean distances in pixels, and the tie-break rank."""

    def __init__(self, half_window: int):
        if half_window < 0:
            raise ValueError(f"half_window must be >= 0, got {half_window}")
        self.w = int(half_window)
        self.k = 2 * self.w + 1
        self.size = self.k * self.k

    @cached_property
    def offsets(self) -> list[Offset]:
        w = self.w
        return [
            Offset(dy, dx, float(((dy - w) ** 2 + (dx - w) ** 2) ** 0.5), dy == w and dx == w)
            for dy in range(self.k)
            for dx in range(self.k)
        ]

    def distances(self, device=None) -> torch.Tensor:
        """(k*k,) float32 distances in window (row-major) order."""
        return torch.tensor([o.distance for o in self.offsets], dtype=torch.float32, device=device)

    @cached_property
    def _rank(self) -> torch.Tensor:
        order = sorted(range(self.size), key=lambda i: (self.offsets[i].distance, i))
        rank = torch.empty(self.size, dtype=torch.float64)
        rank[torch.tensor(order)] = torch.arange(self.size, dtype=torch.float64)
        return rank

    def rank(self, device=None) -> torch.Tensor:
        """(k*k,) float64 rank of each position by distance, then by index: the centre is 0."""
        return self._rank.to(device)


class Padded:
    """A (H, W) scene map padded by reflection so that window offsets and tiles are plain slices."""

    def __init__(self, x: torch.Tensor, pad: int):
        self.height, self.width = x.shape[-2:]
        self.pad = pad
        self.data = reflect_pad(x, pad)

    def shifted(self, r0: int, r1: int, dy: int, dx: int) -> torch.Tensor:
        """The map seen at window offset (dy, dx) by output rows r0..r1 (offsets run 0..2·pad)."""
        return self.data[r0 + dy : r1 + dy, dx : dx + self.width]

    def unfold(self, r0: int, r1: int, w: int) -> torch.Tensor:
        """(r1-r0, W, 2w+1, 2w+1) view of the windows of output rows r0..r1 (w <= pad)."""
        s = self.pad - w
        band = self.data[r0 + s : r1 + s + 2 * w, s : s + self.width + 2 * w]
        return band.unfold(0, 2 * w + 1, 1).unfold(1, 2 * w + 1, 1)

    def window_index(self, r0: int, r1: int, w: int, positions: torch.Tensor) -> torch.Tensor:
        """Flat indices into `data` of window `positions` (T, W, n) of output rows r0..r1, for `take`."""
        k = 2 * w + 1
        s = self.pad - w
        dev = positions.device
        rows = torch.arange(r0, r1, device=dev)[:, None, None] + s + positions.div(k, rounding_mode="floor")
        cols = torch.arange(self.width, device=dev)[None, :, None] + s + positions.remainder(k)
        return rows * self.data.shape[-1] + cols

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.data.reshape(-1)[index]


def most_similar(
    fine: Padded, centre: torch.Tensor, r0: int, r1: int, window: Window, n: int, threshold: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The n window positions most similar to each centre pixel of rows r0..r1.

    `fine` holds NaN where a pixel may not be a candidate. The key is |F(i) − F(c)| + 1e-7 K × rank(i) (float64 so the
    tie-break survives); with a `threshold`, only |F(i) − F(c)| < threshold qualifies, the valid centre always does.
    Returns positions (T, W, n) into the window and a bool mask of those that are real candidates.
    """
    diff = (fine.unfold(r0, r1, window.w) - centre[r0:r1, :, None, None]).abs_()  # the one float32 map per tile
    diff = diff.reshape(r1 - r0, fine.width, window.size)
    ok = torch.isfinite(diff)
    if threshold is not None:
        ok &= diff < threshold
    centre_index = window.size // 2
    ok[..., centre_index] = torch.isfinite(centre[r0:r1])
    key = diff.to(torch.float64).add_(window.rank(diff.device) * RANK_STEP_K).masked_fill_(~ok, float("inf"))
    key, pos = torch.topk(key, min(n, window.size), dim=-1, largest=False, sorted=False)
    return pos, torch.isfinite(key)
