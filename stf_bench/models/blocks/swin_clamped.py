"""Swin layers that also run on maps no larger than their window (reference Swin rule), for THSTNet.

The reference Swin block uses one window of the whole map, without shift, when min(H, W) <= window. THSTNet's
official code relies on this for patches below 256 px (its deepest Swin layers then see 4x4 or 2x2 maps). The
official code builds a smaller relative-position table in that case; here the block keeps its full (2w-1)^2 table
and reads the central offsets, so one set of weights serves every patch size. Maps larger than the window run the
unchanged `blocks.swin.SwinBlock` code; parameter names are those of `SwinBlock` / `SwinLayer`.
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.models.blocks.swin import (
    RelativePositionBias,
    SwinBlock,
    merge_heads,
    split_heads,
    window_attention_probs,
)


def central_bias(bias: RelativePositionBias, window: int) -> torch.Tensor:
    """(heads, N, N) bias of a `window` x `window` window read from a table built for `bias.window` >= window."""
    full = bias.window
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()]).to(bias.table.device)
    rel = coords[:, :, None] - coords[:, None, :] + (full - 1)
    index = rel[0] * (2 * full - 1) + rel[1]
    n = window * window
    return bias.table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)


class ClampedSwinBlock(SwinBlock):
    """A SwinBlock; a map no larger than the window is attended as one unshifted window of its own size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        if min(h, w) > self.window:
            return super().forward(x)
        if h != w:
            raise ValueError(f"ClampedSwinBlock: a map smaller than the window must be square, got {h}x{w}")
        q, k, v = (split_heads(t, self.attn.num_heads) for t in self.attn.qkv(self.norm1(x).reshape(b, h * w, c))
                   .chunk(3, dim=-1))
        attn = window_attention_probs(q, k, central_bias(self.attn.bias, h), None)
        x = x + self.attn.proj(merge_heads(attn @ v)).view(b, h, w, c)
        return x + self.mlp(self.norm2(x))


class ClampedSwinLayer(nn.Module):
    """`depth` ClampedSwinBlocks alternating regular (even) and half-window-shifted (odd) windows."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int = 8, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(
            ClampedSwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, qkv_bias)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x
