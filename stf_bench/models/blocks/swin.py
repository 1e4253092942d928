"""Swin Transformer pieces (Liu et al., 2021) shared by the transformer fusion models.

Feature maps are channel-last `(B, H, W, C)` throughout, so the resolution is read from the tensor at run time instead
of being fixed at construction: the same weights run on any map whose sides are multiples of the window. Shift masks
are therefore built per call (a few small ops next to the attention itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Logit added between tokens of different regions of a shifted window. Finite, as in the reference Swin code, so a
# fully masked row can never turn into NaN; exp(-100) is 4e-44, i.e. no attention in float32.
MASK_VALUE = -100.0


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window * window, C); windows in row-major order, batch-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def check_window_grid(h: int, w: int, window: int, where: str) -> None:
    """Window attention tiles the map exactly; any other size would silently mix or drop pixels."""
    if h % window or w % window:
        raise ValueError(
            f"{where}: feature map {h}x{w} is not a multiple of the attention window {window}; "
            "feed inputs whose size is a multiple of the model's size_multiple"
        )


def effective_shift(h: int, w: int, window: int, shift: int) -> int:
    """No shift when one window already covers the whole map (reference Swin rule): rolling would only wrap edges."""
    return 0 if min(h, w) <= window else shift


def shifted_window_mask(h: int, w: int, window: int, shift: int, device=None) -> torch.Tensor:
    """(nW, N, N) additive mask for attention on a map rolled by -shift: 0 inside a region, MASK_VALUE across.

    After the cyclic roll, the last row/column band of windows holds pixels from opposite edges of the map. Labelling
    the three bands [0, H-window), [H-window, H-shift), [H-shift, H) per axis and forbidding attention between
    different labels keeps every token attending only to pixels that were spatial neighbours before the roll.
    """
    if not 0 < shift < window:
        raise ValueError(f"shifted_window_mask: shift {shift} must lie in (0, window={window})")
    check_window_grid(h, w, window, "shifted_window_mask")
    labels = torch.zeros(1, h, w, 1, device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bands:
        for cols in bands:
            labels[:, rows, cols, :] = region
            region += 1
    lw = window_partition(labels, window).squeeze(-1)  # (nW, N)
    diff = lw.unsqueeze(1) - lw.unsqueeze(2)
    return torch.where(diff == 0, 0.0, MASK_VALUE)


class RelativePositionBias(nn.Module):
    """Learned bias per head for each of the (2w-1)^2 relative offsets inside a window; returns (heads, N, N)."""

    def __init__(self, window: int, num_heads: int):
        super().__init__()
        self.window = window
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
        rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N) in [0, 2w-2]
        self.register_buffer("index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def forward(self) -> torch.Tensor:
        n = self.window * self.window
        return self.table[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B_, N, C) -> (B_, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B_, heads, N, d) -> (B_, N, heads * d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def window_attention_probs(q, k, bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias + mask) for windowed heads q, k of shape (B * nW, heads, N, d)."""
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1) + bias.unsqueeze(0)
    if mask is not None:
        n_win = mask.shape[0]
        b_, heads, n, _ = logits.shape
        logits = (logits.view(b_ // n_win, n_win, heads, n, n) + mask[None, :, None]).view(b_, heads, n, n)
    return logits.softmax(dim=-1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.bias = RelativePositionBias(window, num_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
        attn = window_attention_probs(q, k, self.bias(), mask)
        return self.proj(merge_heads(attn @ v))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, the transformer feed-forward."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP, both residual, on a (B, H, W, C) map."""

    def __init__(self, dim: int, num_heads: int, window: int = 8, shift: int = 0, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"SwinBlock: shift {shift} must lie in [0, window={window})")
        if dim % num_heads:
            raise ValueError(f"SwinBlock: dim {dim} is not divisible by num_heads {num_heads}")
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, c = x.shape
        check_window_grid(h, w, self.window, type(self).__name__)
        shift = effective_shift(h, w, self.window, self.shift)
        y = self.norm1(x)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        mask = shifted_window_mask(h, w, self.window, shift, x.device) if shift else None
        y = window_reverse(self.attn(window_partition(y, self.window), mask), self.window, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinLayer(nn.Module):
    """`depth` Swin blocks alternating regular (even) and half-window-shifted (odd) windows."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int = 8, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, qkv_bias)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch convolution + LayerNorm: (B, C_in, H, W) -> (B, H/p, W/p, dim)."""

    def __init__(self, in_ch: int, dim: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.patch or x.shape[-1] % self.patch:
            raise ValueError(f"PatchEmbed: input {tuple(x.shape[-2:])} is not a multiple of the patch {self.patch}")
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: concat 4C (order (0,0), (1,0), (0,1), (1,1)), LayerNorm, Linear without bias."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        if h % 2 or w % 2:
            raise ValueError(f"PatchMerging: feature map {h}x{w} has an odd side")
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))
