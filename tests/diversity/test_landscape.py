import math

import numpy as np
import pytest
import scipy.stats

from geodiv import geo
from geodiv.diversity.landscape import (
    landscape_by_continent,
    landscape_entropy,
    landscape_entropy_from_fractions,
    landscape_summary,
)
from geodiv.errors import InputError


def test_entropy_of_constructed_fractions():
    fractions = np.zeros((4, 17), dtype=np.float32)
    fractions[0, 16] = 1.0  # homogeneous
    fractions[1, [10, 12]] = 0.5  # two classes, half each
    fractions[2, [1, 2, 5, 9]] = 0.25  # four classes
    fractions[3] = 1 / 17  # every class
    np.testing.assert_allclose(
        landscape_entropy_from_fractions(fractions), [0.0, 1.0, 2.0, math.log2(17)], rtol=1e-6
    )


def test_real_points_homogeneous_desert_vs_mixed_europe():
    # A point deep in the Sahara (Libya/Niger border region) and one in the Dutch river landscape.
    lat = np.array([23.0, 52.0])
    lon = np.array([12.0, 5.5])
    sahara, netherlands = landscape_entropy(lat, lon)
    assert sahara == 0.0
    assert netherlands > 1.5
    # Equal to the entropy of the geo stage's fractions computed independently.
    ref = scipy.stats.entropy(geo.landcover_fractions(lat, lon, window=7), base=2, axis=-1)
    np.testing.assert_allclose([sahara, netherlands], ref, atol=1e-6)


def test_window_one_is_a_single_cell_and_bigger_windows_see_more():
    rng = np.random.default_rng(0)
    lat, lon = geo.sample_locations("Europe", 200, rng)
    assert (landscape_entropy(lat, lon, window=1) == 0).all()
    assert landscape_entropy(lat, lon, window=15).mean() > landscape_entropy(lat, lon, window=3).mean()
    with pytest.raises(InputError):
        landscape_entropy(lat, lon, window=4)


def test_summary_samples_like_the_pretraining_sets():
    s = landscape_summary("Europe", n=300, seed=1, window=7)
    lat, lon = geo.sample_locations("Europe", 300, 1)
    assert s["region"] == "Europe" and s["n"] == 300 and s["window"] == 7
    assert s["landscape_entropy"] == pytest.approx(landscape_entropy(lat, lon).mean())
    assert s["quantiles"]["q05"] <= s["quantiles"]["q50"] <= s["quantiles"]["q95"]
    assert sum(s["histogram"]["counts"]) == 300
    assert landscape_summary("Europe", n=300, seed=1) == s  # deterministic per seed


def test_by_continent_leaves_out_antarctica():
    res = landscape_by_continent(n=20, seed=0)
    assert set(res) == set(geo.CONTINENTS) - {"Antarctica"}
    assert all(r["n"] == 20 and r["region"] == name for name, r in res.items())
