"""`coarse`: C2 alone, averaged to its blocks and brought back bicubically. What the coarse image knows by itself."""

from __future__ import annotations

import torch

from .base import ClassicalBaseline, FusionInputs
from .blocks import coarse_image


class Coarse(ClassicalBaseline):
    pairs_required = 0

    def predict(self, x: FusionInputs) -> torch.Tensor:
        return coarse_image(x.coarse_tgt, x.block_grid())
