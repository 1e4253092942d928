"""The zero-initialised last convolution of a residual head (models.md: "zero-initialised, so training starts at
the baseline"). At the first step only that convolution receives a gradient; from the second on, every layer does.
"""

from __future__ import annotations

from torch import nn


def zero_init_(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv
