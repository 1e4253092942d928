"""Configurable reconstruction losses: a weighted sum of standard terms, from the model config's ``loss:`` block.

Pixel terms average over observed target pixels only (``valid_tgt``), unless ``mask_target: false``. Structural terms
(SSIM, MS-SSIM) need whole windows, so they see the patch with non-observed target pixels replaced by the
prediction (detached): those pixels then add no error. The data range is the normalized training span (1.0 under
min-max), never inferred from a batch.

A model published on an internal range (``value_range: symmetric`` for [-1, 1], ``unit`` for [0, 1]; models.md part 2
§0) computes its loss there, as its official code does: prediction and target are mapped to that range and the data
range becomes the interval's width, so pixel and structural terms keep their published balance.
"""

from __future__ import annotations

import torch
from torch import nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import masked_charbonnier, masked_l1, masked_mse
from stf_bench.models.blocks.msssim import ms_ssim, ssim
from stf_bench.models.blocks.ranges import RANGES


def _l1(pred, target, mask, **_):
    return masked_l1(pred, target, mask)


def _mse(pred, target, mask, **_):
    return masked_mse(pred, target, mask)


def _charbonnier(pred, target, mask, eps: float = 1e-3, **_):
    return masked_charbonnier(pred, target, mask, eps)


def _ssim(pred, target, mask, data_range: float = 1.0, **_):
    return 1.0 - ssim(pred, target, data_range)


def _ms_ssim(pred, target, mask, data_range: float = 1.0, variant: str = "product", **_):
    return 1.0 - ms_ssim(pred, target, data_range, variant=variant)


TERMS = {"l1": _l1, "mse": _mse, "charbonnier": _charbonnier, "ssim": _ssim, "ms_ssim": _ms_ssim}
STRUCTURAL = {"ssim", "ms_ssim"}


class CompositeLoss(nn.Module):
    """sum_k weight_k * term_k(pred, F2); returns the total and each term for logging."""

    def __init__(self, terms: list[dict], data_range: float = 1.0, mask_target: bool = True,
                 value_range: str | None = None) -> None:
        super().__init__()
        if value_range is not None and value_range not in RANGES:
            raise ConfigError(f"model.loss.value_range={value_range!r}; use null (the default normalization) or one "
                              f"of {', '.join(RANGES)}.")
        self.value_range = RANGES.get(value_range)
        if not terms:
            raise ConfigError("model.loss.terms is empty: give at least one term, e.g. [{name: l1, weight: 1.0}].")
        self.terms = []
        for term in terms:
            term = dict(term)
            name = term.pop("name", None)
            if name not in TERMS:
                raise ConfigError(f"model.loss.terms: unknown term {name!r}; available: {', '.join(TERMS)}.")
            weight = float(term.pop("weight", 1.0))
            self.terms.append((name, weight, term))
        self.data_range = self.value_range.width if self.value_range else data_range
        self.mask_target = mask_target

    def forward(self, pred: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        target = batch["fine_tgt"]
        if self.value_range:
            pred, target = self.value_range.to_internal(pred), self.value_range.to_internal(target)
        mask = batch["valid_tgt"] if self.mask_target else None
        filled = target if mask is None else torch.where(mask, target, pred.detach())
        out = {}
        total = pred.new_zeros(())
        for name, weight, kwargs in self.terms:
            value = TERMS[name](pred, filled if name in STRUCTURAL else target, mask,
                                data_range=self.data_range, **kwargs)
            out[name] = value.detach()
            total = total + weight * value
        out["loss"] = total
        return out
