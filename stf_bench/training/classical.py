"""Classical baselines as runs: no parameters, no training; whole scenes in Kelvin in, Kelvin out."""

from __future__ import annotations

import torch

from stf_bench.evaluation.tiling import IMAGE_KEYS
from stf_bench.training.module import FusionModule


class ClassicalModule(FusionModule):
    """Denormalizes the sample's images, runs the method on the whole scene and returns Kelvin unchanged."""

    def predict_kelvin(self, batch: dict) -> torch.Tensor:
        kelvin = {k: (self.norm.to_kelvin(v.float()) if k in IMAGE_KEYS else v) for k, v in batch.items()}
        return self.net(kelvin)

    def configure_optimizers(self):
        return None
