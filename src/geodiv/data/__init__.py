"""Pretraining datasets: catalogs, geographic sampling strategies, WebDataset shards, streaming, adapters.

Public API (see docs/data.md): ``DatasetConfig``, ``build_dataset``, ``write_shards``, ``read_manifest``,
``iter_samples``, ``verify_dataset``, ``ShardStream``, ``satmae_normalize``, ``zscore``, ``register_scorer``,
``assert_disjoint``, ``inspect_dataset``, ``format_inspection``; sources in ``geodiv.data.sources``.
Names are imported lazily so that ``import geodiv.data`` stays cheap (torch loads with ``ShardStream``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # shards
    "Sample": "shard_format", "MANIFEST": "shard_format", "write_shards": "shard_writer",
    "read_manifest": "shard_reader", "iter_samples": "shard_reader", "verify_dataset": "shard_reader",
    "load_arrays": "shard_reader",
    # streaming, normalisation, augmentation
    "ShardStream": "stream", "Normalizer": "normalize", "satmae_normalize": "normalize", "zscore": "normalize",
    "dataset_stats": "normalize", "Augment": "transforms", "BatchCropResample": "transforms",
    # catalogs and strategies
    "make_catalog": "catalog", "read_catalog": "catalog", "write_catalog": "catalog",
    "assert_disjoint": "catalog", "nearest_km": "catalog",
    "GlobalStrategy": "strategies", "OneHotStrategy": "strategies", "MixtureStrategy": "strategies",
    "StratifiedStrategy": "strategies", "DiversityStrategy": "strategies", "register_scorer": "strategies",
    "select": "strategies", "STUDY_CONTINENTS": "strategies",
    # build and inspect
    "DatasetConfig": "build", "build_dataset": "build", "load_dataset_configs": "build",
    "inspect_dataset": "inspect", "format_inspection": "inspect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"geodiv.data.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geodiv.data' has no attribute {name!r}")
