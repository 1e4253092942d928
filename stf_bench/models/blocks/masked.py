"""Pixel losses averaged over observed target pixels (``valid_tgt``), for the models' own ``compute_loss`` hooks
and the config-driven composite loss alike. Terms against a reference image pass ``mask=None`` (all pixels)."""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return masked_mean((pred - target).abs(), mask)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return masked_mean((pred - target) ** 2, mask)


def masked_charbonnier(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                       eps: float = 1e-3) -> torch.Tensor:
    return masked_mean(torch.sqrt((pred - target) ** 2 + eps**2), mask)


def fill_invalid(target: torch.Tensor, valid: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """The target with unobserved pixels replaced by the detached prediction.

    Feature and structure losses mix neighbouring pixels, so they cannot be averaged over a mask; comparing the
    prediction with this filled target makes unobserved target pixels contribute no error (and no gradient).
    """
    return torch.where(valid, target, pred.detach())
