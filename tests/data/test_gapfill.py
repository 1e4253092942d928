"""Gap filling: the vectorized progressive focal mean against the per-window reference and by hand; temporal
linear interpolation by known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from stf_bench.data.gapfill import progressive_focal_mean, progressive_focal_mean_direct, temporal_linear


def clustered_gaps(shape, fraction, seed):
    """LST-like values with the top `fraction` of a smooth random field set to NaN, plus gaps on the edges."""
    rng = np.random.default_rng(seed)
    image = (290.0 + 5.0 * rng.standard_normal(shape)).astype(np.float32)
    field = gaussian_filter(rng.standard_normal(shape), 4.0)
    image[field > np.quantile(field, 1.0 - fraction)] = np.nan
    image[:6, :9] = np.nan  # a corner
    image[-1, 20:40] = np.nan  # along the last row
    image[30:45, -4:] = np.nan  # against the right edge
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_equals_direct_on_clustered_gaps(seed):
    image = clustered_gaps((48, 64), 0.25, seed)
    fast = progressive_focal_mean(image)
    direct = progressive_focal_mean_direct(image)
    assert np.isfinite(fast).all() and fast.dtype == np.float32
    assert np.max(np.abs(fast.astype(np.float64) - direct)) <= 1e-4
    observed = np.isfinite(image)
    np.testing.assert_array_equal(fast[observed], image[observed])


def test_known_answers_by_hand():
    center = np.array([[1, 2, 3], [4, np.nan, 6], [7, 8, 9]], np.float32)
    assert progressive_focal_mean(center)[1, 1] == pytest.approx(5.0)
    corner = np.array([[np.nan, 2, 0], [4, 6, 0], [0, 0, 0]], np.float32)
    assert progressive_focal_mean(corner)[0, 0] == pytest.approx(4.0)  # window truncated at the edge: (2+4+6)/3
    # Pass 1 (3 wide) fills the two gaps next to data; the middle one waits for pass 2 (5 wide), which sees them.
    row = np.array([[1, np.nan, np.nan, np.nan, 5]], np.float32)
    np.testing.assert_allclose(progressive_focal_mean(row), [[1, 1, 3, 5, 5]])
    np.testing.assert_allclose(progressive_focal_mean_direct(row), [[1, 1, 3, 5, 5]])


def test_all_valid_and_all_gap_images_are_unchanged():
    image = np.arange(12, dtype=np.float32).reshape(3, 4) + 280
    np.testing.assert_array_equal(progressive_focal_mean(image), image)
    assert progressive_focal_mean(image).dtype == np.float32
    empty = np.full((3, 4), np.nan, np.float32)
    assert np.isnan(progressive_focal_mean(empty)).all()


def _stack(*frames):
    return np.array([[[v]] for v in frames], np.float32)  # (T, 1, 1)


def test_temporal_linear_between_two_dates():
    out = temporal_linear(_stack(280.0, np.nan, 300.0), np.array([0.0, 5.0, 20.0]), max_days=32)
    assert out[1, 0, 0] == pytest.approx(285.0)  # 5/20 of the way from 280 to 300
    assert out[0, 0, 0] == 280.0 and out[2, 0, 0] == 300.0


def test_temporal_linear_one_sided_and_out_of_reach():
    days = np.array([0.0, 10.0, 20.0, 60.0])
    out = temporal_linear(_stack(np.nan, 290.0, np.nan, np.nan), days, max_days=15)
    assert out[0, 0, 0] == 290.0  # only a later observation within reach
    assert out[2, 0, 0] == 290.0  # only an earlier one
    assert np.isnan(out[3, 0, 0])  # 50 days from the nearest observation
    # Both sides observed but one beyond max_days: the near side alone.
    out = temporal_linear(_stack(280.0, np.nan, 300.0), np.array([0.0, 10.0, 40.0]), max_days=15)
    assert out[1, 0, 0] == 280.0


def test_temporal_linear_is_per_pixel():
    stack = np.full((3, 2, 2), np.nan, np.float32)
    stack[0] = [[280, 281], [282, np.nan]]
    stack[2] = [[290, np.nan], [292, 293]]
    stack[1, 1, 0] = 250.0  # observed: kept
    out = temporal_linear(stack, np.array([0.0, 8.0, 16.0]), max_days=32)
    np.testing.assert_allclose(out[1], [[285, 281], [250, 293]])
    np.testing.assert_allclose(out[2, 0, 1], 281)
    np.testing.assert_allclose(out[0, 1, 1], 293)
