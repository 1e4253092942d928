"""`delta`: F̂2 = F1 + C2 − C1, pixel by pixel. STARFM with a 1 × 1 window, and the leaderboard's Skill reference."""

from __future__ import annotations

import torch

from .base import ClassicalBaseline, FusionInputs


class Delta(ClassicalBaseline):
    pairs_required = 1

    def predict(self, x: FusionInputs) -> torch.Tensor:
        return x.fine_ref + (x.coarse_tgt - x.coarse_ref)
