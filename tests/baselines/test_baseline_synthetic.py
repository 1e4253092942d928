"""Two-pair methods on the embedded synthetic dataset: a constant MODIS offset is the known answer for bias handling.

Three 2020 dates of the synthetic STF-LST world (96 × 96 px), MODIS put on the fine grid by nearest neighbour. With
MODIS bias and noise switched off, the coarse images are the aggregated truth; adding +3 K to every coarse image
must leave ESTARFM's prediction where it was (the offset cancels in C2 − C_k) and lift ubESTARFM's by exactly 3 K
(its local bias correction moves the fine values to the MODIS level).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make, sample, scores

from stf_bench.data import regrid
from stf_bench.data.sources.synthetic import SyntheticSource

OFFSET_K = 3.0
CLEAN = dict(modis_bias_k=0.0, modis_noise_k=0.0, landsat_cloud_max=0.0, modis_cloud_max=0.0)


def _dates(workdir, **knobs):
    src = SyntheticSource(n_dates=3, height=96, width=96, seed=0, start="2020-01-01", end="2020-12-31", **knobs)
    return [(s.fine, regrid.warp(s.coarse, s.coarse_grid, s.fine_grid, "nearest")) for s in src.load(workdir)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _dates(tmp_path_factory.mktemp("synthetic_clean"), **CLEAN)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return _dates(tmp_path_factory.mktemp("synthetic_default"))


def _predict(model_id, dates, offset=0.0):
    (f1, c1), (f2, c2), (f3, c3) = dates
    pred = make(model_id, coarse_block=33)(sample(f1, c1 + offset, c2 + offset, f3, c3 + offset))[0, 0].numpy()
    return pred, f2


def test_constant_sensor_offset_cancels_in_estarfm_and_passes_through_ubestarfm(clean):
    base, truth = _predict("estarfm", clean)
    shifted, _ = _predict("estarfm", clean, OFFSET_K)
    # the offset changes only the similarity weights R, not the level: same bias, no mean shift
    assert abs(float(np.mean(shifted - base))) < 0.05
    assert abs(scores(shifted, truth)["bias"] - scores(base, truth)["bias"]) < 0.05
    base, truth = _predict("ubestarfm", clean)
    shifted, _ = _predict("ubestarfm", clean, OFFSET_K)
    np.testing.assert_allclose(shifted - base, OFFSET_K, atol=0.01)
    assert scores(shifted, truth)["bias"] - scores(base, truth)["bias"] == pytest.approx(OFFSET_K, abs=0.01)


@pytest.mark.parametrize("model_id", ["estarfm", "ubestarfm", "starfm", "stnlffm"])
def test_two_pair_methods_score_on_the_synthetic_dataset(model_id, default):
    """Default knobs: per-date MODIS bias and noise, clouds. Every two-pair method beats persistence from t1 by far,
    and ubESTARFM's bias follows the MODIS − truth offset at t2."""
    pred, truth = _predict(model_id, default)
    got = scores(pred, truth)
    (f1, _), (f2, c2), _ = default
    assert got["rmse"] < 0.5 * scores(f1, f2)["rmse"]
    if model_id == "ubestarfm":
        assert got["bias"] == pytest.approx(float(np.nanmean(c2 - f2)), abs=0.1)
