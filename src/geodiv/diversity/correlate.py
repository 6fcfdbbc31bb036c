"""Correlation between diversity measures and downstream performance across pretraining datasets.

``correlate(x, y)``: Spearman (the paper's statistic), Pearson and Kendall (tau-b) with scipy's p-values and a
seeded, paired percentile bootstrap interval (``scipy.stats.bootstrap``). With 7-10 datasets the intervals are
wide; they are reported so that nobody reads a rho of 0.8 on 8 points as settled.

``correlate_measures(diversity, performance, measures)``: every diversity measure against one performance value
per dataset (a task's main metric, or ``mean_performance``: the mean over tasks), leaving out what cannot be
computed (the report's rule) or, with ``strict=True``, refusing it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats as st

from geodiv.diversity.dataset import MEASURES
from geodiv.errors import InputError

METHODS: tuple[str, ...] = ("spearman", "pearson", "kendall")


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis; NaN where either side is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _pearson_rows(st.rankdata(a, axis=-1), st.rankdata(b, axis=-1))


def _kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall tau-b along the last axis (scipy's kendalltau has no axis; this is its formula, vectorised)."""
    sa = np.sign(a[..., :, None] - a[..., None, :])
    sb = np.sign(b[..., :, None] - b[..., None, :])
    # Sums over all ordered pairs count each unordered pair twice; the factor cancels in the ratio.
    concordance = (sa * sb).sum(axis=(-1, -2))
    den = np.sqrt(np.abs(sa).sum(axis=(-1, -2)) * np.abs(sb).sum(axis=(-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, concordance / np.where(den > 0, den, 1.0), np.nan)


_ROW_STATISTICS = {"spearman": _spearman_rows, "pearson": _pearson_rows, "kendall": _kendall_rows}
_SCIPY_TESTS = {"spearman": st.spearmanr, "pearson": st.pearsonr, "kendall": st.kendalltau}


def enough_defined(n_defined: int, n_boot: int, confidence: float = 0.95) -> bool:
    """Whether a percentile bootstrap interval may be read from ``n_defined`` of ``n_boot`` resamples: dropping more
    than the interval's own tail mass (``1 - confidence``) shifts its percentiles by more than they measure (the
    rest are conditional on keeping the few distinct values), so it may not even contain the estimate."""
    return n_defined > 0 and n_defined >= confidence * n_boot


def bootstrap_seed(seed: int) -> dict[str, np.random.Generator]:
    """The keyword that seeds ``scipy.stats.bootstrap``: scipy >= 1.15 calls the generator ``rng``, older releases
    ``random_state``."""
    keyword = "rng" if "rng" in inspect.signature(st.bootstrap).parameters else "random_state"
    return {keyword: np.random.default_rng(seed)}


def _bootstrap_distribution(x: np.ndarray, y: np.ndarray, method: str, n_boot: int, seed: int) -> np.ndarray:
    def statistic(a, b, axis=-1):
        return _ROW_STATISTICS[method](np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples are counted and reported instead
        res = st.bootstrap(
            (x, y),
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=n_boot,
            method="percentile",
            **bootstrap_seed(seed),
        )
    return np.asarray(res.bootstrap_distribution, dtype=np.float64)


def correlate(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
) -> dict:
    """Spearman, Pearson and Kendall correlation of paired values with p-values and bootstrap intervals.

    Returns ``{"n", "spearman": {"r", "p", "ci_low", "ci_high", "n_boot_valid"}, "pearson": ..., "kendall": ...,
    "confidence", "n_boot"}``.
    Resamples whose statistic is undefined (a resample with constant x or y) are left out of the interval and
    ``n_boot_valid`` says how many remained. When more than ``1 - confidence`` of them are undefined, the interval
    is withheld (None): it would be conditional on resamples that keep the rare distinct values, e.g. six one-hot
    sets with continent entropy 0 and one global set, where a third of the resamples miss the global set and the
    rest put the interval beside, not around, rho. ``r``/``p``/``ci`` are None where undefined (n < 3 or constant
    input).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise InputError(f"correlate needs paired values; got {xa.size} x values and {ya.size} y values")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise InputError(
            "correlate got NaN or infinite values; drop the datasets whose value is missing first"
        )
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise InputError(f"unknown correlation method(s) {sorted(unknown)}; choose from {list(METHODS)}")
    out: dict = {"n": int(xa.size)}
    degenerate = xa.size < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0
    alpha = (1.0 - confidence) / 2.0
    for method in methods:
        if degenerate:
            out[method] = {"r": None, "p": None, "ci_low": None, "ci_high": None, "n_boot_valid": 0}
            continue
        test = _SCIPY_TESTS[method](xa, ya)
        dist = _bootstrap_distribution(xa, ya, method, n_boot, seed)
        valid = dist[np.isfinite(dist)]
        enough = enough_defined(valid.size, dist.size, confidence)
        lo, hi = np.quantile(valid, [alpha, 1.0 - alpha]) if enough else (np.nan, np.nan)
        out[method] = {
            "r": float(test.statistic),
            "p": float(test.pvalue),
            "ci_low": float(lo) if np.isfinite(lo) else None,
            "ci_high": float(hi) if np.isfinite(hi) else None,
            "n_boot_valid": int(valid.size),
        }
    out["confidence"] = confidence
    out["n_boot"] = n_boot
    return out


def correlate_measures(
    diversity: Mapping[str, Mapping[str, float]],
    performance: Mapping[str, float],
    measures: Sequence[str] | None = None,
    *,
    strict: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, dict]:
    """:func:`correlate` of each diversity measure with one performance value per dataset.

    ``diversity``: dataset -> {measure: value} (e.g. rows of ``dataset_diversity``); ``performance``: dataset ->
    value (a task's main metric, or ``mean_performance``), in the order the datasets are paired (the bootstrap
    resamples in that order). Only datasets present in both are used. Returns {measure: correlate(...)}.

    By default (the report's rule: it shows what can be computed) what cannot be correlated is left out: pairs with
    a missing or non-finite value, a measure no dataset has, and one with fewer than 3 pairs left. ``strict=True``
    refuses instead, for callers to whom a gap means a broken study: fewer than 3 datasets with both diversity and
    performance, or a measure missing for one of them, is an ``InputError`` naming them and the fix, and a
    non-finite value is :func:`correlate`'s error. ``measures`` defaults to the headline ``MEASURES`` (with
    ``strict``, those that every dataset has: the normalised and effective-number variants are monotone in the
    entropies, so they would repeat the rank correlations).
    """
    common = [d for d in performance if d in diversity]
    if strict and len(common) < 3:
        raise InputError(
            f"need diversity and performance for at least 3 datasets to correlate; have {sorted(common)} "
            f"(diversity for {sorted(diversity)}, performance for {sorted(performance)})"
        )
    if measures is None:
        measures = [m for m in MEASURES if not strict or all(diversity[d].get(m) is not None for d in common)]
    out: dict[str, dict] = {}
    for m in measures:
        if strict:
            missing = [d for d in common if diversity[d].get(m) is None]
            if missing:
                raise InputError(f"diversity measure {m!r} is missing for {missing}; recompute their diversity")
        elif not any(m in row for row in diversity.values()):
            continue
        x = np.array([diversity[d].get(m, np.nan) for d in common], dtype=float)
        y = np.array([performance[d] for d in common], dtype=float)
        if strict:
            out[m] = correlate(x, y, n_boot=n_boot, seed=seed)
            continue
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3:
            continue
        out[m] = correlate(x[ok], y[ok], n_boot=n_boot, seed=seed)
    return out


def mean_performance(performance: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean over tasks of each dataset's main-metric values (every dataset must have the same tasks)."""
    tasks = _common_tasks(performance)
    return {name: float(np.mean([scores[t] for t in tasks])) for name, scores in performance.items()}


def _common_tasks(performance: Mapping[str, Mapping[str, float]]) -> list[str]:
    task_sets = {name: set(scores) for name, scores in performance.items()}
    if not task_sets:
        raise InputError("no performance values given")
    tasks = set.intersection(*task_sets.values())
    missing = {name: sorted(ts - tasks) for name, ts in task_sets.items() if ts != tasks}
    if missing or not tasks:
        raise InputError(
            f"datasets were evaluated on different tasks ({missing}); the mean over tasks is only comparable "
            "when every dataset has a value for every task: evaluate the missing ones or drop those tasks"
        )
    return sorted(tasks)
