"""Classical baselines as runs: no parameters, no training; whole scenes in Kelvin in, Kelvin out."""

from __future__ import annotations

from stf_bench.training.module import FusionModule


class ClassicalModule(FusionModule):
    """Test-only: its predictor turns the sample back into Kelvin for the method (``lightning_module: none``)."""

    def configure_optimizers(self):
        return None
