"""Sobel gradient-magnitude loss (AMS-STF, RSFN; models.md part 2 §7, §8).

Both official repositories compare per-band Sobel magnitudes sqrt(gx^2 + gy^2 + 1e-6) of the prediction and the
target by MSE; the 3x3 Sobel kernels are correlated with zero padding 1, so the output keeps the input size. The eps
keeps the square root differentiable where an image is flat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stf_bench.models.blocks.masked import fill_invalid, masked_mean

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))  # responds to changes along x (columns)


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): sqrt(gx^2 + gy^2 + eps) per channel, zero padding 1."""
    kx = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device)
    kernels = torch.stack([kx, kx.t()])[:, None].repeat(x.shape[1], 1, 1, 1)  # (2C, 1, 3, 3): gx, gy per channel
    g = F.conv2d(x, kernels, padding=1, groups=x.shape[1])
    gx, gy = g[:, 0::2], g[:, 1::2]
    return torch.sqrt(gx**2 + gy**2 + eps)


def sobel_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
              eps: float = 1e-6) -> torch.Tensor:
    """MSE between the Sobel magnitudes of `pred` and `target`.

    `valid` (bool, broadcastable to `target`): unobserved target pixels are first replaced by the detached
    prediction (a magnitude mixes a 3x3 neighbourhood, so the error cannot just be masked afterwards), then the
    squared errors are averaged over observed pixels only. `valid=None` averages over every pixel (official).
    """
    if valid is not None:
        valid = valid.bool()
        target = fill_invalid(target, valid, pred)
    return masked_mean((sobel_magnitude(pred, eps) - sobel_magnitude(target, eps)) ** 2, valid)
