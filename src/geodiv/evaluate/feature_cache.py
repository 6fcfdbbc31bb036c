"""The features cache shared by every evaluation protocol: split tables, model inputs and frozen features.

A task split is read once (:func:`read_split`) and its inputs prepared (``geodiv.evaluate.inputs``). Frozen
features (``geodiv.models.extract_features``) are computed once per (checkpoint, task, split, transform, feature
kind) and cached as ``.npy`` (written atomically); kNN and the linear probe read the same arrays. The split's
labels and locations are cached beside them, so a second encoder on the same task does not re-read the images'
labels either.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import atomic_path
from geodiv.errors import DataError
from geodiv.evaluate.encoders import Encoder
from geodiv.evaluate.inputs import BandPlan, EvalTransform, prepare_inputs
from geodiv.models.features import default_device, extract_features
from geodiv.progress import progress

FEATURE_CACHE_VERSION = 1


# ------------------------------------------------------------------------------------- split tables
@dataclass
class SplitTable:
    """Labels and locations of one split, in sample order."""

    keys: np.ndarray  # str
    labels: np.ndarray  # (n,) int / float, (n, K) multi-hot, (n, H, W) masks
    lat: np.ndarray  # float, NaN where unknown
    lon: np.ndarray
    continent: np.ndarray  # str, "" where unknown

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, idx: np.ndarray) -> SplitTable:
        return SplitTable(self.keys[idx], self.labels[idx], self.lat[idx], self.lon[idx], self.continent[idx])


def _stack_labels(labels: list[Any], task_type: str, where: str) -> np.ndarray:
    if not labels:
        return np.zeros((0,), dtype=np.int64)
    if task_type == "classification":
        return np.asarray(labels, dtype=np.int64)
    if task_type == "regression":
        return np.asarray(labels, dtype=np.float64)
    arrays = [np.asarray(v) for v in labels]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(
            f"{where}: labels have different shapes {sorted(shapes)[:3]}; multi-hot vectors and masks of a "
            "split must share one shape"
        )
    dtype = np.float32 if task_type == "multilabel" else np.int16
    return np.stack(arrays).astype(dtype)


def continent_labels(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(["" if v is None else str(v) for v in values], dtype=str)


def read_split(task: Any, split: str) -> tuple[list[np.ndarray], SplitTable]:
    """Iterate a task split once: raw images and the split's table."""
    images, keys, labels, lat, lon, cont = [], [], [], [], [], []
    where = f"task {task.name!r} split {split!r}"
    for s in progress(task.iter_split(split), total=split_size(task, split), desc=f"read {task.name}/{split}", unit="img"):
        image = np.asarray(s.image)
        if image.ndim != 3:
            raise DataError(f"{where}: sample {s.key} has an image of shape {image.shape}; expected (C, H, W)")
        if image.shape[0] != len(task.bands):
            raise DataError(
                f"{where}: sample {s.key} has {image.shape[0]} channels but the task names {len(task.bands)} bands"
            )
        images.append(image)
        keys.append(str(s.key))
        labels.append(s.label)
        lat.append(np.nan if s.lat is None else float(s.lat))
        lon.append(np.nan if s.lon is None else float(s.lon))
        cont.append(s.continent)
    table = SplitTable(
        np.asarray(keys, dtype=str),
        _stack_labels(labels, task.type, where),
        np.asarray(lat, dtype=np.float64),
        np.asarray(lon, dtype=np.float64),
        continent_labels(cont),
    )
    return images, table


def split_size(task: Any, split: str) -> int | None:
    """``task.n(split)``, or None where the task cannot count without reading (the split is read anyway)."""
    try:
        return int(task.n(split))
    except Exception:  # noqa: BLE001 - a count is only a hint (progress bar, cache key, empty-val check)
        return None


def task_fingerprint(task: Any) -> str:
    """Identity of a task's data for cache keys: its own ``fingerprint`` if it has one, else its description."""
    fp = getattr(task, "fingerprint", None)
    if fp:
        return str(fp)
    desc = {
        "name": task.name,
        "type": task.type,
        "classes": list(task.classes) if task.classes is not None else None,
        "bands": list(task.bands),
        "n": {s: split_size(task, s) for s in task.splits()},
        "path": str(getattr(task, "path", None) or getattr(task, "root", "") or ""),
        "options": str(getattr(task, "options", "")),
        "info": getattr(task, "info", None),
    }
    path = desc["path"]
    if path and os.path.exists(path):  # files rewritten in place invalidate the cache
        desc["mtime"] = os.stat(path).st_mtime_ns
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- cache
@dataclass
class FeatureStore:
    """Inputs, tables and features of task splits: in memory for this process, on disk under ``cache_dir``."""

    cache_dir: Path | None = None
    #: In-memory budget (raw images, inputs, features, tables); least recently used entries go first.
    max_memory_bytes: int = int(os.environ.get("GEODIV_EVAL_MEMORY_MB", "2048")) * 2**20
    _memory: OrderedDict = field(default_factory=OrderedDict)

    def _remember(self, key: str, value: Any) -> Any:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > 1 and sum(_nbytes(v) for v in self._memory.values()) > self.max_memory_bytes:
            self._memory.popitem(last=False)
        return value

    @staticmethod
    def digest(parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps({"v": FEATURE_CACHE_VERSION, **parts}, sort_keys=True).encode()).hexdigest()[:24]

    def _file(self, stem: str) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / stem

    def table(self, task: Any, split: str) -> SplitTable:
        key = self.digest({"what": "table", "task": task_fingerprint(task), "split": split})
        if key in self._memory:
            return self._memory[key]
        path = self._file(f"{_safe_name(task.name)}-{split}-table-{key}.npz")
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                table = SplitTable(z["keys"], z["labels"], z["lat"], z["lon"], z["continent"])
            return self._remember(key, table)
        _, table = self._raw(task, split)
        return table

    def _raw(self, task: Any, split: str) -> tuple[list[np.ndarray], SplitTable]:
        key = self.digest({"what": "raw", "task": task_fingerprint(task), "split": split})
        if key in self._memory:
            return self._memory[key]
        images, table = read_split(task, split)
        tkey = self.digest({"what": "table", "task": task_fingerprint(task), "split": split})
        path = self._file(f"{_safe_name(task.name)}-{split}-table-{tkey}.npz")
        if path is not None:
            with atomic_path(path) as tmp:
                np.savez(tmp, keys=table.keys, labels=table.labels, lat=table.lat, lon=table.lon,
                         continent=table.continent)
        self._remember(tkey, table)
        return self._remember(key, (images, table))

    def inputs(self, task: Any, split: str, plan: BandPlan, transform: EvalTransform) -> np.ndarray:
        """Model inputs (N, C, S, S) of a split (memory only: they are cheap to rebuild, large to store)."""
        key = self.digest(
            {"what": "inputs", "task": task_fingerprint(task), "split": split, "plan": _plan_key(plan),
             "transform": transform.key()}
        )
        if key in self._memory:
            return self._memory[key]
        images, _ = self._raw(task, split)
        return self._remember(key, prepare_inputs(images, plan, transform))

    def features(
        self,
        encoder: Encoder,
        task: Any,
        split: str,
        plan: BandPlan,
        transform: EvalTransform,
        *,
        kind: str = "pooled",
        pool: str = "global",
        batch_size: int = 64,
        device: str | None = None,
    ) -> np.ndarray:
        key = self.digest(
            {"what": "features", "checkpoint": encoder.checkpoint_id, "task": task_fingerprint(task), "split": split,
             "plan": _plan_key(plan), "transform": transform.key(), "kind": kind, "pool": pool}
        )
        if key in self._memory:
            return self._memory[key]
        path = self._file(f"{_safe_name(task.name)}-{split}-{kind}-{key}.npy")
        if path is not None and path.is_file():
            feats = np.load(path, allow_pickle=False)
            n = len(self.table(task, split))
            if feats.shape[0] != n:
                raise DataError(
                    f"feature cache {path} holds {feats.shape[0]} rows but split {split!r} of task {task.name!r} has "
                    f"{n} samples; delete the file and rerun"
                )
            return self._remember(key, feats)
        feats = extract_features(
            encoder.module, self.inputs(task, split, plan, transform), pool=pool, device=default_device(device),
            kind=kind, batch_size=batch_size, bf16=False,
        )
        if path is not None:
            with atomic_path(path) as tmp:
                np.save(tmp, feats, allow_pickle=False)
        return self._remember(key, feats)


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, SplitTable):
        return sum(_nbytes(v) for v in (value.keys, value.labels, value.lat, value.lon, value.continent))
    return 0


def _plan_key(plan: BandPlan) -> dict[str, Any]:
    return {"bands": list(plan.model_bands), "index": list(plan.source_index)}


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))[:60]
