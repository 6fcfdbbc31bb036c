import numpy as np
import pytest
import scipy.stats

from geodiv.diversity.correlate import (
    _kendall_rows,
    correlate,
    correlate_measures,
    mean_performance,
)
from geodiv.errors import InputError

X = [0.12, 0.55, 0.31, 0.93, 0.74, 0.2, 0.81, 0.4]
Y = [1.0, 2.9, 2.2, 6.1, 3.8, 1.5, 5.2, 2.0]


def test_values_match_scipy():
    r = correlate(X, Y, n_boot=200)
    for method, fn in (
        ("spearman", scipy.stats.spearmanr),
        ("pearson", scipy.stats.pearsonr),
        ("kendall", scipy.stats.kendalltau),
    ):
        ref = fn(X, Y)
        assert r[method]["r"] == pytest.approx(ref.statistic)
        assert r[method]["p"] == pytest.approx(ref.pvalue)
        assert r[method]["ci_low"] <= r[method]["r"] <= r[method]["ci_high"]
    assert r["n"] == 8


def test_bootstrap_is_seeded_and_widens_with_noise():
    a = correlate(X, Y, n_boot=300, seed=4)
    assert a == correlate(X, Y, n_boot=300, seed=4)
    assert a != correlate(X, Y, n_boot=300, seed=5)
    rng = np.random.default_rng(0)
    noisy = correlate(X, rng.normal(size=8), n_boot=300)
    width = lambda res: res["spearman"]["ci_high"] - res["spearman"]["ci_low"]  # noqa: E731
    assert width(noisy) > width(a)


def test_interval_withheld_when_most_resamples_are_degenerate():
    # Six one-hot sets share continent entropy 0, the global set has 2.3: about (6/7)^7 = 34 % of the resamples miss
    # it (rho undefined). The percentiles of the rest lie above rho, so correlate gives no interval.
    x = [0.0] * 6 + [2.3]
    y = [0.50, 0.52, 0.48, 0.51, 0.47, 0.49, 0.53]
    r = correlate(x, y, n_boot=2000, seed=0)["spearman"]
    assert r["r"] == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
    assert r["ci_low"] is None and r["ci_high"] is None
    assert 0.55 * 2000 < r["n_boot_valid"] < 0.75 * 2000
    # The interval it withholds (percentiles of the defined resamples) would not contain rho.
    from geodiv.diversity.correlate import _bootstrap_distribution

    dist = _bootstrap_distribution(np.array(x), np.array(y), "spearman", 2000, 0)
    lo = np.quantile(dist[np.isfinite(dist)], 0.025)
    assert lo > r["r"]
    # Distinct values: every resample of 7 has at least two of them but for 7 / 7^7 of them, so the interval stays.
    full = correlate(np.arange(7.0), y, n_boot=2000, seed=0)["spearman"]
    assert full["n_boot_valid"] >= 0.95 * 2000 and full["ci_low"] <= full["r"] <= full["ci_high"]


def test_vectorised_kendall_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(40, 9)).astype(float)
    b = rng.integers(0, 4, size=(40, 9)).astype(float)
    ref = np.array([scipy.stats.kendalltau(a[i], b[i]).statistic for i in range(40)])
    np.testing.assert_allclose(_kendall_rows(a, b), ref, atol=1e-12)


def test_degenerate_and_bad_inputs():
    const = correlate([1, 1, 1, 1], [1, 2, 3, 4])
    assert const["spearman"]["r"] is None and const["spearman"]["ci_low"] is None
    with pytest.raises(InputError, match="paired"):
        correlate([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="NaN"):
        correlate([1, 2, np.nan], [1, 2, 3])


def test_strict_correlation_against_the_mean_and_each_task():
    names = [f"d{i}" for i in range(6)]
    diversity = {
        n: {"spectral_entropy": float(i), "continent_entropy": float(-i), "n_samples": 10}
        for i, n in enumerate(names)
    }
    performance = {n: {"a": 0.1 * i, "b": 1.0 - 0.05 * i} for i, n in enumerate(names)}
    assert mean_performance(performance)["d2"] == pytest.approx((0.2 + 0.9) / 2)
    mean = correlate_measures(diversity, mean_performance(performance), strict=True, n_boot=100)
    assert set(mean) == {"spectral_entropy", "continent_entropy"}  # the headline measures every dataset has
    per_b = correlate_measures(diversity, {n: scores["b"] for n, scores in performance.items()}, strict=True,
                               n_boot=100)
    assert mean["spectral_entropy"]["spearman"]["r"] == pytest.approx(1.0)  # mean = 0.5 + 0.025 i rises with i
    assert per_b["spectral_entropy"]["spearman"]["r"] == pytest.approx(-1.0)
    assert mean["continent_entropy"]["spearman"]["r"] == pytest.approx(-1.0)


def test_strict_correlation_refuses_what_lenient_leaves_out():
    div = {n: {"spectral_entropy": float(i)} for i, n in enumerate("abc")}
    with pytest.raises(InputError, match="different tasks"):
        mean_performance({"a": {"t": 1.0}, "b": {"t": 2.0}, "c": {"u": 3.0}})
    with pytest.raises(InputError, match="at least 3"):
        correlate_measures(div, {"a": 1.0}, strict=True)
    assert correlate_measures(div, {"a": 1.0}) == {}
    perf = {"a": 1.0, "b": 2.0, "c": 3.0}
    with pytest.raises(InputError, match="'landscape_entropy' is missing for \\['a', 'b', 'c'\\]"):
        correlate_measures(div, perf, ["spectral_entropy", "landscape_entropy"], strict=True)
    assert list(correlate_measures(div, perf, ["spectral_entropy", "landscape_entropy"])) == ["spectral_entropy"]
    with pytest.raises(InputError, match="NaN"):
        correlate_measures(div, {**perf, "b": float("nan")}, ["spectral_entropy"], strict=True)


def test_correlate_measures_pairs_in_order_and_leaves_out_what_cannot_be_computed():
    nan = float("nan")
    diversity = {"a": {"m": 1.0, "k": 1.0, "j": 1.0}, "b": {"m": 3.0, "k": nan}, "c": {"m": 2.0, "k": 2.0, "j": 2.0},
                 "d": {"m": 5.0, "k": 4.0}, "no-performance": {"m": 9.0, "k": 9.0, "j": 9.0}}
    performance = {"d": 0.9, "a": 0.1, "c": 0.5, "b": 0.4, "no-diversity": 0.7}
    got = correlate_measures(diversity, performance, ["m", "k", "j", "absent"], n_boot=200, seed=3)
    assert list(got) == ["m", "k"]  # j has 2 pairs, absent none
    assert got["m"] == correlate([5.0, 1.0, 2.0, 3.0], [0.9, 0.1, 0.5, 0.4], n_boot=200, seed=3)
    assert got["k"] == correlate([4.0, 1.0, 2.0], [0.9, 0.1, 0.5], n_boot=200, seed=3)
