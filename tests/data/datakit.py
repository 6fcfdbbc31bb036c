"""Helpers for the geodiv.data tests (imported as ``datakit``): synthetic samples, fixture generators."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from geodiv.bands import SATMAE_BANDS
from geodiv.data.shard_format import Sample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_module(name: str):
    """The ``make_fixture`` module of tests/fixtures/<name> (each writes its files into a folder we choose)."""
    spec = importlib.util.spec_from_file_location(f"fixture_{name}", FIXTURES / name / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic_samples(n: int, size: int = 16, bands: int = len(SATMAE_BANDS), seed: int = 0, label: bool = False):
    rng = np.random.default_rng(seed)
    conts = ("Europe", "Africa", "Asia")
    for i in range(n):
        meta = {"lat": float(i) / 10, "lon": float(i) / 5, "continent": conts[i % 3], "biome": None, "idx": i}
        arrays = {"label": (rng.random((size, size)) * 4).astype(np.uint8)} if label else {}
        yield Sample(f"k{i:05d}", rng.integers(0, 6000, (bands, size, size)).astype(np.uint16), meta, arrays)


