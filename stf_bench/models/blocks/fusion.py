"""The fusion building blocks that models.md defines once for every model (part 1, "Shared building blocks").

All work on (B,1,H,W) tensors in normalized units; quantities given in Kelvin (such as ICW's epsilon) are converted
with the model's ``norm`` by the caller (``AffineNorm.kelvin_to_units``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def delta_baseline(fine_ref: torch.Tensor, coarse_ref: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
    """b_i = F_i + (C2 - C_i): the reference image moved by the coarse change."""
    return fine_ref + (coarse_tgt - coarse_ref)


def box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k moving mean at every pixel; windows cut by the border average only the pixels inside."""
    return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)


def icw_weights(coarse_tgt: torch.Tensor, coarse_1: torch.Tensor, coarse_3: torch.Tensor, eps: float,
                k: int = 31) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-change weights (w_1, w_3) of two reference predictions: the reference whose coarse image changed
    less (k x k mean of |C2 - C_i|, plus eps) gets more weight; w_1 + w_3 = 1 at every pixel."""
    inv_1 = 1.0 / (box_mean((coarse_tgt - coarse_1).abs(), k) + eps)
    inv_3 = 1.0 / (box_mean((coarse_tgt - coarse_3).abs(), k) + eps)
    w_1 = inv_1 / (inv_1 + inv_3)
    return w_1, 1.0 - w_1


def coarse_pool(x: torch.Tensor, r: int) -> torch.Tensor:
    """A_r: average pooling by r; a partial block at the bottom or right edge averages the pixels it has."""
    return F.avg_pool2d(x, r, ceil_mode=True)


def upsample(x: torch.Tensor, size) -> torch.Tensor:
    """U: bilinear upsampling back to the fine grid (align_corners=False)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def high_pass(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """HP(x) = x - U(avgpool_factor(x)): the detail a 4x coarser image cannot carry."""
    return x - upsample(coarse_pool(x, factor), x.shape[-2:])


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward finite differences along x (width) and y (height)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gradient_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L1(grad pred, grad target), averaged over differences whose two pixels are both valid (when a mask is given)."""
    (px, py), (tx, ty) = gradients(pred), gradients(target)
    if valid is None:
        return 0.5 * ((px - tx).abs().mean() + (py - ty).abs().mean())
    v = valid.to(pred.dtype)
    vx, vy = v[..., :, 1:] * v[..., :, :-1], v[..., 1:, :] * v[..., :-1, :]
    return 0.5 * (((px - tx).abs() * vx).sum() / vx.sum().clamp_min(1) + ((py - ty).abs() * vy).sum() / vy.sum().clamp_min(1))
