"""Plain residual CNNs (no normalization), shared by the reconstructed residual-learning models (dlstf, biastf)."""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.models.blocks.head_init import zero_init_


class ResidualBlock(nn.Module):
    """x + conv3x3(ReLU(conv3x3(x))): 2 * (9 c^2 + c) parameters (73,856 at c = 64)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def residual_cnn(in_ch: int, out_ch: int = 1, width: int = 64, n_blocks: int = 8) -> nn.Sequential:
    """conv3x3 in->width; n_blocks residual blocks; conv3x3 width->out, zero-initialised so the network starts as
    the zero map and the model it corrects starts at its baseline (at the first step only this last conv receives
    a gradient; after it, every layer does)."""
    tail = zero_init_(nn.Conv2d(width, out_ch, 3, padding=1))
    return nn.Sequential(
        nn.Conv2d(in_ch, width, 3, padding=1), *[ResidualBlock(width) for _ in range(n_blocks)], tail
    )
