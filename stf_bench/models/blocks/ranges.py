"""Internal value ranges of models published with a Tanh head or an x0 clip (models.md part 2 §0 "Internal ranges").

``forward`` takes and returns the default normalization (training-split min-max, [0, 1] on the training span). A model
built for [-1, 1] (STFGAN, STFDiff, SwinSTFM) or [0, 1] (THSTNet) maps its inputs so that the training span fills the
central 80 % of that interval, and maps its output back: the bound then lies 12.5 % of the span beyond the training
extremes, so colder or hotter test pixels are not clipped at the training minimum or maximum.
"""

from __future__ import annotations

import torch


class InternalRange:
    """x' = scale * x + offset and its inverse; ``width`` is the published interval's (the MS-SSIM data range there)."""

    def __init__(self, scale: float, offset: float, width: float):
        self.scale, self.offset, self.width = scale, offset, width

    def to_internal(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.offset

    def from_internal(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.offset) / self.scale


SYMMETRIC = InternalRange(1.6, -0.8, 2.0)  # [0, 1] -> [-0.8, 0.8] inside [-1, 1]
UNIT = InternalRange(0.8, 0.1, 1.0)  # [0, 1] -> [0.1, 0.9] inside [0, 1]
RANGES = {"symmetric": SYMMETRIC, "unit": UNIT}
