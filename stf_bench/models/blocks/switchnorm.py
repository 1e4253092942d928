"""Switchable normalization (Luo et al., 2019) as GAN-STFM uses it: a learned mix of instance, layer and batch norm.

GAN-STFM normalizes its fine-image trunk with it, so that one network copes with references from any date: the
mix can lean on per-image (IN/LN) statistics that do not depend on which batch a patch came from.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SwitchNorm2d(nn.Module):
    """IN, LN and BN statistics mixed by two separate softmax-normalized 3-vectors (means, variances).

    - IN: per sample and channel, mean and *unbiased* variance over H x W.
    - LN: derived from IN over channels: mean_C(mean_IN), mean_C(var_IN + mean_IN^2) - mean_LN^2.
    - BN: derived from IN likewise over the batch. In training the running statistics follow
      r = momentum * r + (1 - momentum) * batch, starting from 0; evaluation uses them. IN and LN always come from
      the current input.

    Parameters: per-channel affine (1, 0) plus 6 mixing scalars (initialised to ones, i.e. equal shares).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.register_buffer("running_mean", torch.zeros(1, num_features, 1))
        self.register_buffer("running_var", torch.zeros(1, num_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SwitchNorm2d expects (N,C,H,W) input, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        mean_in = flat.mean(-1, keepdim=True)
        var_in = flat.var(-1, keepdim=True, unbiased=True)
        second_moment = var_in + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = second_moment.mean(1, keepdim=True) - mean_ln**2
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = second_moment.mean(0, keepdim=True) - mean_bn**2
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean_bn)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var_bn)
        else:
            mean_bn, var_bn = self.running_mean, self.running_var
        mw = torch.softmax(self.mean_weight, 0)
        vw = torch.softmax(self.var_weight, 0)
        mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
        var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
        out = (flat - mean) / (var + self.eps).sqrt()
        return out.reshape(n, c, h, w) * self.weight + self.bias
