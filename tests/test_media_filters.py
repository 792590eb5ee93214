"""lipdub.media.filters gives scipy.ndimage's values for the calls lipdub makes (start-up avoids scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lipdub.media import filters

RNG = np.random.default_rng(0)
SIGNALS = [RNG.random(200), RNG.random(3), (RNG.random(57) * 9).astype(np.float32), np.r_[np.zeros(20), np.ones(9)]]


@pytest.mark.parametrize("mode", ["reflect", "nearest", "mirror", "wrap", "constant"])
@pytest.mark.parametrize("sigma", [0.6, 2.0, 7.5])
def test_gaussian_matches_scipy(mode, sigma):
    for x in SIGNALS:
        ours = filters.gaussian_filter1d(x, sigma, mode=mode)
        assert ours.dtype == x.dtype
        np.testing.assert_allclose(ours, ndimage.gaussian_filter1d(x, sigma, mode=mode), rtol=1e-6, atol=1e-6)


def test_gaussian_along_an_axis_of_a_table():
    table = RNG.random((90, 9)) * (RNG.random((90, 9)) > 0.7)
    for axis in (0, 1):
        np.testing.assert_allclose(filters.gaussian_filter1d(table, 3.3, axis=axis, mode="nearest"),
                                   ndimage.gaussian_filter1d(table, 3.3, axis=axis, mode="nearest"), atol=1e-12)


@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("mode", ["reflect", "nearest"])
def test_median_and_uniform_match_scipy(size, mode):
    labels = RNG.integers(0, 6, 300)
    assert np.array_equal(filters.median_filter(labels, size, mode=mode),
                          ndimage.median_filter(labels, size=size, mode=mode))
    for x in SIGNALS:
        assert np.array_equal(filters.median_filter(x, size, mode=mode), ndimage.median_filter(x, size, mode=mode))
        np.testing.assert_allclose(filters.uniform_filter1d(x, size, mode=mode),
                                   ndimage.uniform_filter1d(x, size, mode=mode), atol=1e-6)


def test_even_sizes_are_refused():
    with pytest.raises(ValueError, match="odd"):
        filters.median_filter(np.zeros(9), 4)
