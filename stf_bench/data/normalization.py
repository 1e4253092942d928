"""The affine map between Kelvin and the normalized values models see, fitted on the training split only."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class AffineNorm:
    """x_K = offset + scale * x. One map for fine and coarse images so that temporal differences stay comparable."""

    offset: float
    scale: float

    @classmethod
    def fit_minmax(cls, arrays) -> AffineNorm:
        """Min-max over the finite values of the given arrays (training split); the default normalization."""
        lo, hi = np.inf, -np.inf
        for a in arrays:
            a = np.asarray(a)
            finite = a[np.isfinite(a)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        if not np.isfinite(lo) or hi <= lo:
            raise ValueError(f"cannot fit a normalization: training data range is [{lo}, {hi}]")
        return cls(offset=lo, scale=hi - lo)

    def to_kelvin(self, x):
        return self.offset + self.scale * x

    def from_kelvin(self, k):
        return (k - self.offset) / self.scale

    def kelvin_to_units(self, delta_k: float) -> float:
        """A temperature *difference* in K expressed in normalized units (for thresholds such as eps = 0.05 K)."""
        return delta_k / self.scale

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> AffineNorm:
        return cls(float(d["offset"]), float(d["scale"]))
