"""Integration on real data: the Yanco MODIS/Landsat sample (ubESTARFM authors) built with dataset=yanco.

Known answers from the sample's README: predicting Landsat 2016-03-08 from the 2016-02-05 pair and the MODIS of
2016-03-08 by the temporal delta F1 + (C2 - C1) scores RMSE ~ 4.98 K, bias ~ -4.4 K; persistence F1 ~ 8.85 K.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
from data_fixtures import REPO, compose
from rasterio.crs import CRS

from stf_bench.data.store import build_dataset

YANCO = REPO.parent / "shared" / "data" / "yanco"
pytestmark = pytest.mark.skipif(not YANCO.is_dir(), reason=f"the Yanco sample is not at {YANCO} (../shared/data/yanco)")


@pytest.mark.parametrize("variant", ["stf_lst", "reproject"])
def test_yanco_temporal_delta_known_answer(tmp_path, caplog, variant):
    cfg = compose("dataset=yanco", f"preprocess={variant}", f"paths.root_dir={REPO}")
    with caplog.at_level(logging.WARNING, logger="stf_bench.data.sources.folder"):
        store, cache_hit = build_dataset(cfg.dataset, cfg.preprocess, tmp_path)
    assert not cache_hit and "2016-02-18 (coarse only)" in caplog.text
    assert store.dates == [dt.date(2016, 2, 5), dt.date(2016, 3, 8)]
    assert store.manifest["units"] == "K" and store.manifest["dataset"]["data_range_k"] == 40.0
    assert store.grid.shape == (400, 400) and store.grid.rio_crs == CRS.from_epsg(4326)
    values, observed = np.asarray(store.values, np.float64), np.asarray(store.observed)
    assert 295 < np.nanmedian(values) < 320  # Kelvin, Australian summer
    (f1, c1), (f2, c2) = values
    valid = observed[1, 0]
    assert valid.mean() > 0.99
    error = (f1 + c2 - c1 - f2)[valid]
    assert np.sqrt(np.mean(error**2)) == pytest.approx(4.98, abs=0.01)
    assert error.mean() == pytest.approx(-4.42, abs=0.01)
    assert np.sqrt(np.mean((f1 - f2)[valid] ** 2)) == pytest.approx(8.85, abs=0.01)
