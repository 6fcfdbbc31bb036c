"""Session fixture: 32 real 13-band samples of 16 px in 8 WebDataset shards, written with geodiv.data."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodiv.bands import S2_BANDS
from geodiv.data import write_shards

from .tiny import N_SAMPLES, SHARD_SIZE, SIZE, make_samples


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain_shards")
    write_shards(make_samples(N_SAMPLES, SIZE, seed=0), out, shard_size=SHARD_SIZE, bands=S2_BANDS)
    return out
