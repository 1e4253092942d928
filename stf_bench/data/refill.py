"""Sample inputs that never depend on a held-out date's fine observation (architecture.md, "No leakage across dates").

A cross-date fill (the ``temporal`` variant's interpolation, Earth Engine's ±N-day fill) writes each date's gaps from
its neighbours before any split exists, so a reference image's gap can hold the test target's own observation. The
store keeps what is observed (``values`` where ``observed``) and its manifest says how the fine band was filled
across dates (``cross_date_fill``). `InputImages` gives the fine image of an input date R as the store has it when no
excluded date lies within the fill's reach of R, and otherwise redoes the fill of R from the observed pixels of the
other dates (linear in time, then the variant's spatial fallback on the whole scene of R), cached per (R, excluded
dates in reach). Earth Engine's filled pixels are not observed, so they are gaps to the local redo. Variants without
a cross-date step (``nofill``, ``reproject``, ``stf_lst`` on local sources) read the store unchanged: their only fill
is spatial, per date.
"""

from __future__ import annotations

import numpy as np

from stf_bench.data.gapfill import progressive_focal_mean, temporal_linear

FINE, COARSE = 0, 1


def cross_date_fill(preprocessor, source) -> dict | None:
    """The manifest's record of the fine band's cross-date fill: reach in days and spatial fallback, or None.

    Earth Engine's fill (`source.fine_temporal_fill_days`, both sides needed) and the variant's temporal fill (one side
    is enough) are redone as one linear interpolation over the longer reach: both use the nearest observation on each
    side within their reach.
    """
    reach = [getattr(source, "fine_temporal_fill_days", 0) or 0]
    fill = preprocessor.fill[FINE]
    if fill == "temporal":
        reach.append(preprocessor.temporal_max_days)
    if not max(reach):
        return None
    focal = fill == "focal" or (fill == "temporal" and preprocessor.temporal_fallback == "focal")
    return {"band": "fine", "max_days": float(max(reach)), "one_sided": fill == "temporal",
            "fallback": "focal" if focal else "none"}


class InputImages:
    """Whole-scene input images of one store, per excluded date set; `nan_inputs` gives observed pixels only.

    `nan_inputs` (classical baselines): NaN wherever an input is unobserved, under every variant, so the method's own
    fallback chain decides; nothing filled, hence nothing from another date.
    """

    def __init__(self, store, nan_inputs: bool = False) -> None:
        self.store, self.nan_inputs = store, nan_inputs
        self.fill = store.manifest.get("cross_date_fill")
        self.days = np.array([d.toordinal() for d in store.dates], dtype=np.float64)
        self._cache: dict[tuple[int, frozenset], np.ndarray] = {}

    def image(self, date: int, band: int, exclude: frozenset, window: tuple[slice, slice]) -> np.ndarray:
        """(h, w) float32 Kelvin of `band` at `date` cut to `window`, independent of the excluded dates' fine images."""
        rows, cols = window
        values = np.asarray(self.store.values[date, band, rows, cols], dtype=np.float32)
        if self.nan_inputs:
            return np.where(self.store.observed[date, band, rows, cols], values, np.float32(np.nan))
        if band != FINE:
            return values
        return np.asarray(self.fine(date, exclude)[rows, cols], dtype=np.float32)

    def fine(self, date: int, exclude: frozenset) -> np.ndarray:
        """The whole fine image of `date` (memory map or cached array), refilled without `exclude` where needed."""
        stored = self.store.values[date, FINE]
        if self.fill is None:
            return stored
        if date in exclude:
            raise ValueError(f"date index {date} is excluded from the inputs and cannot be one")
        reach = self.fill["max_days"]
        near = frozenset(k for k in exclude if abs(self.days[k] - self.days[date]) <= reach)
        if not near or self.store.observed[date, FINE].all():
            return stored
        key = (date, near)
        if key not in self._cache:
            self._cache[key] = self._refill(date, exclude)
        return self._cache[key]

    def _refill(self, date: int, exclude: frozenset) -> np.ndarray:
        """Redo the cross-date fill of `date` from the observed pixels of the dates within reach, less `exclude`."""
        reach = self.fill["max_days"]
        dates = [k for k in range(len(self.days))
                 if abs(self.days[k] - self.days[date]) <= reach and k not in exclude]
        observed = np.asarray(self.store.observed[dates, FINE])
        stack = np.where(observed, np.asarray(self.store.values[dates, FINE], dtype=np.float32), np.float32(np.nan))
        image = temporal_linear(stack, self.days[dates], reach, self.fill["one_sided"])[dates.index(date)]
        return progressive_focal_mean(image) if self.fill["fallback"] == "focal" else image
