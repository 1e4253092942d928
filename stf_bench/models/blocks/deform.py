"""Modulated deformable convolution (DCNv2) with `grid_sample`, so that torchvision is not needed (AMS-STF, §8).

Semantics are those of ``torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=k//2, mask=mask)`` with
stride 1, dilation 1 and one offset group: output pixel (y, x) takes, for each kernel tap (i, j) (index
k = i*kw + j), the input bilinearly sampled at (y - kh//2 + i + offset[:, 2k], x - kw//2 + j + offset[:, 2k+1]),
times mask[:, k]; samples outside the image read zero (each of the four bilinear corners separately). The taps are
then contracted with the weight like an ordinary convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, C, H, W); offset (B, 2*kh*kw, H, W) as (dy, dx) pairs per tap; mask (B, kh*kw, H, W);
    weight (O, C, kh, kw) with odd kh, kw; bias (O,) or None -> (B, O, H, W)."""
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"modulated_deform_conv2d needs an odd kernel, got {kh}x{kw}")
    n = kh * kw
    if offset.shape != (b, 2 * n, h, w) or mask.shape != (b, n, h, w):
        raise ValueError(f"offset {tuple(offset.shape)} / mask {tuple(mask.shape)} do not fit x {tuple(x.shape)} and a "
                         f"{kh}x{kw} kernel: expected {(b, 2 * n, h, w)} / {(b, n, h, w)}")
    ty, tx = torch.meshgrid(torch.arange(kh, device=x.device, dtype=x.dtype) - kh // 2,
                            torch.arange(kw, device=x.device, dtype=x.dtype) - kw // 2, indexing="ij")
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1) + ty.reshape(1, n, 1, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w) + tx.reshape(1, n, 1, 1)
    offset = offset.view(b, n, 2, h, w)
    y, xx = rows + offset[:, :, 0], cols + offset[:, :, 1]  # (B, n, H, W) sampling positions in pixels
    # grid_sample's align_corners=False convention: pixel p sits at (2p + 1) / size - 1 (valid for any size >= 1)
    grid = torch.stack(((2 * xx + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1).view(b, n * h, w, 2)
    taps = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    taps = taps.view(b, c, n, h, w) * mask.unsqueeze(1)
    out = torch.einsum("bcnhw,ocn->bohw", taps, weight.reshape(o, c, n))
    return out if bias is None else out + bias.view(1, o, 1, 1)
