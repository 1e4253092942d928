"""Temperature units at the edge of the package: detect or check Celsius/Kelvin and convert to Kelvin.

LST over land lies in roughly 200-350 K (-73..77 °C); the median of a scene tells the two apart with a wide margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stf_bench.errors import DataError

KELVIN_OFFSET = 273.15
PLAUSIBLE_K = (170.0, 370.0)
IMPLAUSIBLE_WARN = 0.01  # fraction of a file's pixels outside PLAUSIBLE_K above which the user is warned
_MEDIAN_RANGE = {"K": (180.0, 360.0), "C": (-90.0, 85.0)}


def detect_units(data: np.ndarray, path: Path) -> str:
    """'K' or 'C' from the median of the valid values; raises when neither is plausible."""
    median = _median(data, path)
    for units, (lo, hi) in _MEDIAN_RANGE.items():
        if lo <= median <= hi:
            return units
    raise DataError(
        f"{path}: cannot tell the temperature units: the median valid value is {median:.4g}, which is neither "
        f"plausible Kelvin (180-360) nor Celsius (-90-85). Check the scale factor and the band index, or declare the "
        f"units and the no-data value in the dataset config (e.g. dataset.source.fine_units=K, "
        f"dataset.source.fine_nodata=-3.4e38)."
    )


def to_kelvin(data: np.ndarray, units: str, path: Path) -> np.ndarray:
    """Convert `data` declared (or detected) as `units` to Kelvin; a declaration the values contradict is an error."""
    units = units.upper()
    if units == "AUTO":
        units = detect_units(data, path)
    if units not in _MEDIAN_RANGE:
        raise DataError(f"{path}: unknown units {units!r}; use K, C or auto.")
    median = _median(data, path)
    lo, hi = _MEDIAN_RANGE[units]
    if not lo <= median <= hi:
        raise DataError(
            f"{path}: declared units {units} but the median valid value is {median:.4g}, which is not plausible "
            f"in {units} ({lo:g} to {hi:g}). Fix the declared units: dataset.source.fine_units / coarse_units = K, C "
            f"or auto."
        )
    kelvin = data + np.float32(KELVIN_OFFSET) if units == "C" else data.copy()
    implausible = np.isfinite(kelvin) & ((kelvin < PLAUSIBLE_K[0]) | (kelvin > PLAUSIBLE_K[1]))
    kelvin[implausible] = np.nan
    return kelvin


def check_sensors_agree(fine_k: np.ndarray, coarse_k: np.ndarray, fine_path: Path, coarse_path: Path,
                        max_diff_k: float = 40.0) -> None:
    """Same-day Landsat and MODIS LST differ by a few K; tens of K means one sensor's units are wrong."""
    diff = float(np.nanmedian(fine_k) - np.nanmedian(coarse_k))
    if abs(diff) > max_diff_k:
        raise DataError(
            f"units disagree between sensors: after conversion the fine image {fine_path} has median "
            f"{np.nanmedian(fine_k):.2f} K and the coarse image {coarse_path} has median {np.nanmedian(coarse_k):.2f} K "
            f"(difference {diff:+.1f} K, same-day LST should differ by a few K). One of the two is in other units "
            f"than declared: set dataset.source.fine_units / coarse_units to K or C (or auto)."
        )


def _median(data: np.ndarray, path: Path) -> float:
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise DataError(
            f"{path}: the scene is all no-data (no valid pixel). Remove the file, list its date in "
            f"dataset.source.exclude, or check the no-data value."
        )
    return float(np.median(finite))
