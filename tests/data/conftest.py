"""Fixtures for the geodiv.data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodiv.bands import SATMAE_BANDS
from geodiv.data.shard_writer import write_shards

from .datakit import synthetic_samples


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """13 samples of 10 bands, 16 px, in shards of 4 (4 shards, the last partial)."""
    out = tmp_path / "ds"
    write_shards(synthetic_samples(13), out, shard_size=4, bands=SATMAE_BANDS)
    return out
