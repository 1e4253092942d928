"""Share of scored test pixels whose inputs depend on the test target's own fine observation (issue 8, item 2).

    python benchmarks/leak_fraction.py [hydra overrides, default: dataset=synthetic_small preprocess=temporal
                                        split=chronological pairing=two_refs] [paths.data_dir=...]

For each test sample, the target's observed fine pixels get +100 K and the inputs are built again: a scored pixel
(observed target pixel) leaks when any input pixel there changes. "store" is what the inputs were before the fix (the
store's fill over all dates, as Preprocessor does it), "samples" what `build_sample` gives now (`InputImages`).
Also printed: among the leaking pixels under "store", the share where a reference equals the target exactly.
Exits 1 if any pixel leaks through the samples.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
from hydra.utils import instantiate

from stf_bench.data.datamodule import REF_KEYS, build_sample
from stf_bench.data.gapfill import progressive_focal_mean, temporal_linear
from stf_bench.data.normalization import AffineNorm
from stf_bench.data.refill import InputImages
from stf_bench.data.samples import make_samples
from stf_bench.data.store import build_dataset

DEFAULTS = ["dataset=synthetic_small", "preprocess=temporal", "+split=chronological", "+pairing=two_refs"]
KELVIN = AffineNorm(0.0, 1.0)


def store_fill(values: np.ndarray, observed: np.ndarray, days: np.ndarray, fill: dict) -> np.ndarray:
    """The fine stack as the store fills it: linear in time over all dates, then the spatial fallback."""
    stack = temporal_linear(np.where(observed, values, np.nan), days, fill["max_days"])
    if fill["fallback"] == "focal":
        stack = np.stack([progressive_focal_mean(image) for image in stack])
    return stack


def main(overrides: list[str]) -> int:
    sys.path.insert(0, "tests/data")
    from data_fixtures import compose

    names = {o.split("=")[0].lstrip("+") for o in overrides}
    cfg = compose(*[d for d in DEFAULTS if d.split("=")[0].lstrip("+") not in names], *overrides,
                  "+model.train_reference=fixed")
    store, _ = build_dataset(cfg.dataset, cfg.preprocess, cfg.paths.data_dir)
    fill = store.manifest["cross_date_fill"]
    samples, _ = make_samples(store.dates, instantiate(cfg.split), instantiate(cfg.pairing))
    values, observed = np.asarray(store.values), np.asarray(store.observed)
    days = np.array([d.toordinal() for d in store.dates], dtype=np.float64)
    base_fill = store_fill(values[:, 0], observed[:, 0], days, fill) if fill else values[:, 0]
    scored = leak_store = equal = leak_samples = 0
    for spec in samples["test"]:
        hot_values = values.copy()
        hot_values[spec.target, 0][observed[spec.target, 0]] += 100.0
        hot_fill = store_fill(hot_values[:, 0], observed[:, 0], days, fill) if fill else hot_values[:, 0]
        valid = observed[spec.target, 0]
        moved = np.zeros(valid.shape, bool)
        same = np.zeros(valid.shape, bool)
        for ref in spec.refs:
            moved |= hot_fill[ref] != base_fill[ref]
            same |= base_fill[ref] == values[spec.target, 0]
        hot_store = SimpleNamespace(values=hot_values, observed=observed, dates=store.dates, manifest=store.manifest)
        window = (slice(None), slice(None))
        a = build_sample(store, KELVIN, spec, window, images=InputImages(store))
        b = build_sample(hot_store, KELVIN, spec, window, images=InputImages(hot_store))
        changed = np.zeros(valid.shape, bool)
        for key in [k for pair in REF_KEYS[:len(spec.refs)] for k in pair] + ["coarse_tgt"]:
            changed |= a[key][0] != b[key][0]
        scored += valid.sum()
        leak_store += (moved & valid).sum()
        equal += (moved & same & valid).sum()
        leak_samples += (changed & valid).sum()
    print(f"store {store.path} ({len(store.dates)} dates, {len(samples['test'])} test samples, "
          f"{scored} scored pixels)")
    print(f"leaking scored pixels, store's fill (before): {leak_store / scored:.2%}; "
          f"of those equal to the target exactly: {equal / max(leak_store, 1):.1%}")
    print(f"leaking scored pixels, build_sample (now):    {leak_samples / scored:.2%}")
    return int(leak_samples > 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
