import numpy as np
import pandas as pd
import pytest

from geodiv.config import validate_config
from geodiv.data.build import DatasetConfig
from geodiv.data.strategies import (
    DiversityStrategy,
    GlobalStrategy,
    MixtureStrategy,
    OneHotStrategy,
    StratifiedStrategy,
    largest_remainder,
    register_scorer,
    select,
    water_fill,
)
from geodiv.errors import ConfigError, DataError


def _catalog(n_per=50):
    conts = ["Africa", "Asia", "Europe", "North America", "Oceania", "South America", "Antarctica"]
    rows = [(c, f"biome{(i % 4) if c != 'Oceania' else 9}") for c in conts for i in range(n_per)]
    return pd.DataFrame({"continent": [r[0] for r in rows], "biome": [r[1] for r in rows],
                         "score": np.arange(len(rows), dtype=float)})


def test_allocation_helpers():
    assert largest_remainder({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert sum(largest_remainder({"x": 0.3, "y": 0.7}, 7).values()) == 7
    assert water_fill({"a": 2, "b": 100, "c": 100}, 30) == {"a": 2, "b": 14, "c": 14}
    with pytest.raises(DataError, match="only 5 candidates for 6"):
        water_fill({"a": 5}, 6)


def test_continent_strategies_give_exact_counts():
    cat = _catalog()
    rows = select(OneHotStrategy(continent="europe"), cat, 30, seed=0)
    assert (cat.iloc[rows]["continent"] == "Europe").all() and len(set(rows)) == 30
    rows = select(MixtureStrategy(ratios={"Europe": 0.5, "Africa": 0.5}), cat, 21, seed=0)
    assert cat.iloc[rows]["continent"].value_counts().to_dict() in ({"Africa": 11, "Europe": 10}, {"Africa": 10, "Europe": 11})
    rows = select(GlobalStrategy(mode="balanced"), cat, 60, seed=0)
    counts = cat.iloc[rows]["continent"].value_counts()
    assert set(counts) == {10} and "Antarctica" not in counts
    rows = select(GlobalStrategy(), cat, 100, seed=0)
    assert "Antarctica" not in set(cat.iloc[rows]["continent"]) and len(rows) == 100


def test_selection_is_deterministic_and_seed_dependent():
    cat = _catalog()
    a = select(GlobalStrategy(), cat, 40, seed=1)
    assert np.array_equal(a, select(GlobalStrategy(), cat, 40, seed=1))
    assert not np.array_equal(a, select(GlobalStrategy(), cat, 40, seed=2))


def test_too_few_candidates_is_an_error_not_a_smaller_dataset():
    with pytest.raises(DataError, match="50 candidates for Europe, the dataset needs 51"):
        select(OneHotStrategy(continent="Europe"), _catalog(), 51, seed=0)


def test_stratified_balances_classes_and_water_fills():
    cat = _catalog(n_per=20)
    cat.loc[cat.index[:3], "biome"] = "rare"
    rows = select(StratifiedStrategy(by="biome"), cat, 43, seed=0)
    counts = cat.iloc[rows]["biome"].value_counts().to_dict()
    assert counts["rare"] == 3 and sum(counts.values()) == 43
    others = [v for k, v in counts.items() if k != "rare"]
    assert max(others) - min(others) <= 1


def test_diversity_strategy_with_registered_scorer():
    register_scorer("test_score", lambda c: c["score"].to_numpy())
    cat = _catalog(n_per=10)  # scores 0..69
    top = select(DiversityStrategy(scorer="test_score", mode="top"), cat, 5, seed=0)
    assert sorted(cat.iloc[top]["score"]) == [65, 66, 67, 68, 69]
    band = select(DiversityStrategy(scorer="test_score", mode="quantile", quantile=(0.0, 0.5)), cat, 10, seed=0)
    assert cat.iloc[band]["score"].max() < 35
    bal = select(DiversityStrategy(scorer="test_score", mode="balanced", bins=5), cat, 10, seed=0)
    assert np.bincount((cat.iloc[bal]["score"].to_numpy() // 14).astype(int), minlength=5).tolist() == [2] * 5
    with pytest.raises(ConfigError, match="no diversity scorer named 'nope'"):
        select(DiversityStrategy(scorer="nope"), cat, 5, seed=0)


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="sum to 1"):
        validate_config(DatasetConfig, {"n": 5, "strategy": {"kind": "mixture", "ratios": {"Europe": 0.5}}})
    with pytest.raises(ConfigError, match="unknown continent 'Atlantis'"):
        validate_config(DatasetConfig, {"n": 5, "strategy": {"kind": "one_hot", "continent": "Atlantis"}})
    with pytest.raises(ConfigError, match="strategy"):
        validate_config(DatasetConfig, {"n": 5, "strategy": {"kind": "random"}})
