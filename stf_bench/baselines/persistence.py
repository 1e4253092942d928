"""`persistence`: F̂2 = F1. How much of a score comes from copying the reference image."""

from __future__ import annotations

import torch

from .base import ClassicalBaseline, FusionInputs


class Persistence(ClassicalBaseline):
    pairs_required = 1

    def predict(self, x: FusionInputs) -> torch.Tensor:
        return x.fine_ref.clone()
