"""The Task machinery shared by all readers (tasks/base.py): splits, few-shot subsets, options; and the reader
registry (tasks/registry.py)."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.errors import ConfigError, InputError
from geodiv.evaluate.tasks import base, registry
from geodiv.evaluate.tasks.base import assign_splits, split_options, subsample_keys
from geodiv.evaluate.tasks.registry import load_task, register_reader


def test_assign_splits_exact_counts_disjoint_and_seeded():
    keys = [f"k{i}" for i in range(100)]
    a = assign_splits(keys, (0.7, 0.1, 0.2), seed=0)
    assert {s: len(v) for s, v in a.items()} == {"train": 70, "val": 10, "test": 20}
    assert sorted(sum(a.values(), [])) == sorted(keys)
    assert a == assign_splits(list(reversed(keys)), (0.7, 0.1, 0.2), seed=0)  # order of input does not matter
    assert a != assign_splits(keys, (0.7, 0.1, 0.2), seed=1)
    assert all(v == sorted(v) for v in a.values())
    assert assign_splits(keys[:3], (1.0, 0.0, 0.0), seed=0) == {"train": ["k0", "k1", "k2"]}


def test_subsample_keeps_order_and_at_least_one():
    keys = [f"k{i:02d}" for i in range(50)]
    sub = subsample_keys(keys, 0.1, seed=4)
    assert len(sub) == 5 and sub == sorted(sub) and set(sub) <= set(keys)
    assert subsample_keys(keys, 0.001, seed=4) and len(subsample_keys(keys, 0.001, seed=4)) == 1


def test_options_are_validated():
    common, rest = split_options({"seed": 3, "bands": ["B2"], "partition": "default"})
    assert common.seed == 3 and rest == {"partition": "default"}
    with pytest.raises(ConfigError, match="sum to 1"):
        split_options({"split_fractions": (0.5, 0.5, 0.5)})
    with pytest.raises(ConfigError, match="fill_missing_bands"):
        split_options({"fill_missing_bands": "zero"})


def test_named_readers_dispatch(monkeypatch):
    calls = []

    def fake(spec, **options):
        calls.append((spec, options))
        return "task"

    monkeypatch.setattr(registry, "_READERS", dict(registry.readers()))
    register_reader("toyworld", fake, task_names=["alpha", "beta"])
    assert load_task("alpha", seed=2) == "task"
    assert load_task("toyworld:beta") == "task"
    assert calls == [("alpha", {"seed": 2}), ("beta", {})]
    with pytest.raises(InputError, match="named tasks: alpha, beta"):
        load_task("gamma")
    with pytest.raises(InputError, match="unknown task format 'nope'"):
        load_task("alpha", format="nope")


def test_builtin_readers_are_registered():
    names = set(registry.readers())
    assert {"geodiv", "geobench", "forty", "bigearthnet", "fmow", "mosaiks", "geotiff"} <= names


def test_continents_for_handles_missing_and_ocean():
    got = base.continents_for(np.array([48.85, np.nan, 0.0]), np.array([2.35, 1.0, -30.0]))
    assert got == ["Europe", None, None]
