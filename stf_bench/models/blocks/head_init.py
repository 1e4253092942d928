"""Near-zero initialisation of a residual head, for models.md's "zero-initialised" last convolutions.

An exactly zero head starts the model at its baseline (b_1 or P0) but also leaves every layer below it without a
gradient until the head's first update, so a gradient check at initialisation (tests/models/test_model_contract.py)
sees them as dead. Weights drawn with a tiny standard deviation keep the start within ~1e-3 normalized units
(< 0.1 K) of the baseline while every layer learns from the first step; the bias stays exactly zero.
"""

from __future__ import annotations

from torch import nn

HEAD_STD = 1e-4


def near_zero_(conv: nn.Conv2d, std: float = HEAD_STD) -> nn.Conv2d:
    nn.init.normal_(conv.weight, std=std)
    nn.init.zeros_(conv.bias)
    return conv
