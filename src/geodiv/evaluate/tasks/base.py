"""Downstream tasks: one abstraction over SimEarth tasks and the real benchmarks users have on disk.

A :class:`Task` names its type, classes and bands and streams :class:`TaskSample` records per split
(``train``, ``val``, ``test``), never holding a whole dataset in memory. Each task format has a reader module
in this package built on :class:`ReaderTask`; :mod:`geodiv.evaluate.tasks.registry` registers the readers and
turns a SimEarth task name or a path (format detected) into a task (``load_task``).

Conventions every reader follows (docs/tasks.md):

- ``image`` is (C, H, W) in the raw units of the source (Sentinel-2 reflectance x 10000 where the source
  stores that), channels in ``task.bands`` order, bands named as in :mod:`geodiv.bands`.
- ``label`` is an ``int`` class index (classification), a float32 multi-hot vector (multilabel), a
  ``float`` (regression) or a (H, W) uint8 mask (segmentation) where ``IGNORE_INDEX`` marks unscored pixels.
- ``lat``/``lon`` in WGS84 degrees when the source knows them; ``continent`` from
  :func:`geodiv.geo.continent_of` (``None`` over the ocean or without location).
"""

from __future__ import annotations

import abc
import functools
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from geodiv.bands import S2_BANDS, SATMAE_MEAN, canonical_band
from geodiv.config import StrictModel, validate_config
from geodiv.errors import DataError, InputError

TASK_TYPES: tuple[str, ...] = ("classification", "multilabel", "regression", "segmentation")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Mask value for pixels that carry no label (unknown / no data); metrics skip them.
IGNORE_INDEX = 255
#: Split spellings found in the wild, mapped to geodiv's names.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "test_gt": "test",
}
#: Folder-of-shards task layout written by :func:`write_task` (and read by ``ShardTask``).
TASK_JSON = "task.json"
TASK_FORMAT = "geodiv-task"


@dataclass
class TaskSample:
    """One downstream example: image (C, H, W) raw values, label, and where on Earth it is."""

    key: str
    image: np.ndarray
    label: int | float | np.ndarray
    lat: float | None = None
    lon: float | None = None
    continent: str | None = None


def check_class_groups(class_groups: Any, task_type: str, classes: Sequence[str] | None) -> dict[str, list[str]] | None:
    """A task's ``class_groups`` checked (``InputError`` saying what is wrong): a classification task's groups of
    two or more of its classes, each class in one group at most. Returns them as ``{str: [str, ...]}``."""
    if class_groups is None:
        return None
    if task_type != "classification":
        raise InputError(f"'class_groups' applies to classification tasks, not {task_type}")
    if not isinstance(class_groups, dict) or not all(isinstance(m, (list, tuple)) for m in class_groups.values()):
        raise InputError("'class_groups' must map each group name to a list of class names")
    seen: dict[str, str] = {}
    for name, members in class_groups.items():
        if len(members) < 2:
            raise InputError(f"class group {name!r} has {len(members)} class(es); a group needs two or more")
        for member in members:
            if member not in (classes or []):
                raise InputError(f"class group {name!r} names {member!r}, which is not one of the task's classes")
            if member in seen:
                raise InputError(f"class {member!r} is in groups {seen[member]!r} and {name!r}; a class may be in "
                                 "one group at most")
            seen[member] = name
    return {str(k): [str(m) for m in v] for k, v in class_groups.items()}


def canonical_split(name: str) -> str:
    try:
        return SPLIT_ALIASES[name.strip().lower()]
    except KeyError:
        raise InputError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}") from None


class Task(abc.ABC):
    """A downstream task: type, classes, bands, and per-split streams of samples.

    Attributes every task sets: ``name``, ``type`` (one of ``TASK_TYPES``), ``classes`` (names, or
    ``None`` for regression), ``bands`` (``geodiv.bands`` names of the image channels, in order),
    ``has_location``, ``source`` (format name), ``path`` (``None`` for generated tasks),
    ``filled_bands`` (bands mean-filled because the data lacks them; reported with results) and
    ``info`` (source facts, JSON-able). A classification task may also set ``class_groups`` (group name ->
    class names): classes that look alike by design; evaluation then reports ``GROUP_METRICS`` too
    (``geodiv.evaluate.metrics``).
    """

    name: str
    type: str
    classes: list[str] | None
    bands: list[str]
    has_location: bool
    source: str = ""
    path: Path | None = None
    filled_bands: list[str]
    info: dict[str, Any]
    class_groups: dict[str, list[str]] | None = None

    @abc.abstractmethod
    def splits(self) -> list[str]:
        """The splits this task has, in ``SPLITS`` order."""

    @abc.abstractmethod
    def n(self, split: str) -> int:
        """Number of samples in ``split``."""

    @abc.abstractmethod
    def iter_split(self, split: str) -> Iterator[TaskSample]:
        """Stream the samples of ``split`` in a fixed order (deterministic for the task's options)."""

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def require_location(self, purpose: str = "a per-region evaluation") -> None:
        """Raise a clear ``InputError`` when the task's samples carry no latitude/longitude."""
        if not self.has_location:
            where = f" ({self.path})" if self.path is not None else ""
            raise InputError(
                f"task {self.name!r}{where} has no sample locations, which {purpose} needs. "
                "Pass a location table with load_task(..., locations='ids.csv') (columns id,lat,lon, "
                "one row per sample key), or evaluate globally (without --by)."
            )

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (for logs, results and ``geodiv evaluate`` reports)."""
        return {
            "name": self.name,
            "type": self.type,
            "source": self.source,
            "path": None if self.path is None else str(self.path),
            "classes": self.classes,
            **({"class_groups": self.class_groups} if self.class_groups else {}),
            "bands": list(self.bands),
            "filled_bands": list(self.filled_bands),
            "has_location": self.has_location,
            "splits": {s: self.n(s) for s in self.splits()},
            "info": self.info,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.type} bands={len(self.bands)} splits={self.splits()}>"


# ----------------------------------------------------------------------------------------------- options
class TaskOptions(StrictModel):
    """Options every reader understands (reader-specific ones are passed to the reader itself)."""

    #: (train, val, test) fractions used when the source defines no splits, or always with ``resplit``.
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    resplit: bool = False
    #: Few-shot: keep this fraction of the training split (GEO-Bench uses its own ``{f}x_train`` partitions).
    train_fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int = 0
    #: Bands to deliver, in this order (``None``: all the bands the source has).
    bands: list[str] | None = None
    fill_missing_bands: Literal["error", "mean"] = "error"
    #: CSV with columns id,lat,lon giving (or overriding) sample locations.
    locations: str | None = None

    @field_validator("split_fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {v}")
        return v


def split_options(options: dict[str, Any]) -> tuple[TaskOptions, dict[str, Any]]:
    """Separate the common ``TaskOptions`` from reader-specific keyword options."""
    common_keys = set(TaskOptions.model_fields)
    common = {k: v for k, v in options.items() if k in common_keys}
    rest = {k: v for k, v in options.items() if k not in common_keys}
    return validate_config(TaskOptions, common, "task options"), rest


def assign_splits(keys: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Deterministic random split of ``keys`` into train/val/test with exact counts.

    Keys are sorted first so the result depends only on the set of keys and the seed; each split keeps the
    keys in sorted order so sequential readers stay sequential.
    """
    ordered = sorted(keys)
    n = len(ordered)
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    n_val = min(n_val, n)
    n_test = min(n_test, n - n_val)
    perm = np.random.default_rng(seed).permutation(n)
    which = np.zeros(n, dtype=np.int8)  # 0 train, 1 val, 2 test
    which[perm[:n_val]] = 1
    which[perm[n_val : n_val + n_test]] = 2
    out = {s: [k for k, w in zip(ordered, which) if w == i] for i, s in enumerate(SPLITS)}
    return {s: ks for s, ks in out.items() if ks}


def subsample_keys(keys: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A seeded ``fraction`` of ``keys`` (at least one), kept in their original order."""
    n_keep = max(1, int(round(fraction * len(keys))))
    chosen = np.sort(np.random.default_rng(seed).permutation(len(keys))[:n_keep])
    return [keys[i] for i in chosen]


def read_location_table(path: str | os.PathLike[str]) -> dict[str, tuple[float, float]]:
    """``id,lat,lon`` CSV -> {id: (lat, lon)}; bad rows are named in the error."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"location table {path} does not exist; give a CSV with columns id,lat,lon")
    table = pd.read_csv(path, dtype={"id": str})
    missing = {"id", "lat", "lon"} - set(table.columns)
    if missing:
        raise InputError(
            f"location table {path} lacks column(s) {', '.join(sorted(missing))}; it has "
            f"{', '.join(map(str, table.columns))}. Expected columns id,lat,lon."
        )
    lat = table["lat"].to_numpy(float)
    lon = table["lon"].to_numpy(float)
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"location table {path}, row {i + 2} (id {table['id'].iloc[i]!r}): lat/lon "
            f"({lat[i]}, {lon[i]}) is not a WGS84 coordinate in degrees"
        )
    return {str(k): (float(a), float(o)) for k, a, o in zip(table["id"], lat, lon)}


def continents_for(lat: np.ndarray, lon: np.ndarray) -> list[str | None]:
    """Continent names for coordinates (``None`` where NaN or over the ocean), via ``geodiv.geo``."""
    from geodiv.geo import continent_of

    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    out: list[str | None] = [None] * len(lat)
    ok = np.isfinite(lat) & np.isfinite(lon)
    if ok.any():
        names = continent_of(lat[ok], lon[ok])
        for i, name in zip(np.flatnonzero(ok), names):
            out[i] = None if name is None else str(name)
    return out


# ------------------------------------------------------------------------------------ keyed reader base
class ReaderTask(Task):
    """Base of the file-backed readers: keys per split, one reader per key, shared post-processing.

    A subclass sets ``name``, ``type``, ``classes``, ``source``, ``path`` and ``source_bands`` (the
    channels as read), then implements ``_list_keys`` and ``_read`` (or ``_read_keys`` for sequential
    formats) and ``_where``. This base applies, in order: split assignment (sources without splits, or
    ``resplit``), few-shot subsampling of train, band selection / mean fill, the location table,
    continent lookup, and label checks.
    """

    #: samples per continent lookup (one vectorised ``continent_of`` call per chunk).
    _CHUNK = 64

    def __init__(self, options: TaskOptions, *, source_has_location: bool) -> None:
        self.options = options
        self.info = getattr(self, "info", {})
        self._locations = read_location_table(options.locations) if options.locations else None
        self.has_location = source_has_location or self._locations is not None
        self._select_bands()

    # -- to implement ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _list_keys(self) -> dict[str, list[str]]:
        """Sample keys per native split (canonical names), or ``{"all": keys}`` without splits."""

    def _read(self, key: str) -> TaskSample:
        """Read one sample: image in ``source_bands`` order, label, lat/lon if known."""
        raise NotImplementedError

    def _read_keys(self, keys: list[str]) -> Iterator[TaskSample]:
        """Read the samples of ``keys`` in that order (sequential formats override this)."""
        for key in keys:
            yield self._read(key)

    def _where(self, key: str) -> str:
        """Where sample ``key`` lives (file path, record), for error messages."""
        return f"{self.path}: sample {key!r}"

    # -- splits --------------------------------------------------------------------------------------------
    @functools.cached_property
    def _split_keys(self) -> dict[str, list[str]]:
        native = self._list_keys()
        if "all" in native or self.options.resplit:
            pool = [k for ks in native.values() for k in ks]
            keys = assign_splits(pool, self.options.split_fractions, self.options.seed)
            self.info["split_origin"] = f"random {self.options.split_fractions} (seed {self.options.seed})"
        else:
            keys = {s: list(native[s]) for s in SPLITS if native.get(s)}
            self.info.setdefault("split_origin", "source")
        if self.options.train_fraction is not None and "train" in keys and not self._few_shot_native():
            keys["train"] = subsample_keys(keys["train"], self.options.train_fraction, self.options.seed)
        if not keys:
            raise DataError(f"{self.path}: the task has no samples")
        return keys

    def _few_shot_native(self) -> bool:
        """True when the source already applied ``train_fraction`` itself (GEO-Bench partitions)."""
        return False

    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self._split_keys]

    def n(self, split: str) -> int:
        return len(self._split_keys.get(canonical_split(split), []))

    def keys(self, split: str) -> list[str]:
        return list(self._split_keys.get(canonical_split(split), []))

    def _check_split(self, split: str) -> str:
        name = canonical_split(split)
        if name not in self._split_keys:
            raise InputError(f"task {self.name!r} ({self.path}) has no {name!r} split; it has {', '.join(self.splits())}")
        return name

    # -- bands ---------------------------------------------------------------------------------------------
    def _select_bands(self) -> None:
        have = list(self.source_bands)
        wanted = [canonical_band(b) for b in self.options.bands] if self.options.bands else have
        self._band_index: list[int | None] = [have.index(b) if b in have else None for b in wanted]
        missing = [b for b, i in zip(wanted, self._band_index) if i is None]
        if missing and self.options.fill_missing_bands == "error":
            raise InputError(
                f"task {self.name!r} ({self.path}) lacks band(s) {', '.join(missing)} that were asked for; "
                f"it has {', '.join(have) or 'none'}. Ask for bands it has, or pass "
                "fill_missing_bands='mean' to fill them with the SatMAE (fMoW-Sentinel) band mean."
            )
        self.bands = wanted
        self.filled_bands = missing
        self._fill_values = {b: SATMAE_MEAN[S2_BANDS.index(b)] for b in missing}

    def _arrange_bands(self, image: np.ndarray, key: str) -> np.ndarray:
        if image.ndim != 3 or image.shape[0] != len(self.source_bands):
            raise DataError(
                f"{self._where(key)}: image has shape {image.shape}, expected "
                f"({len(self.source_bands)}, H, W) for bands {', '.join(self.source_bands)}"
            )
        if self._band_index == list(range(len(self.source_bands))):
            return image
        out = np.empty((len(self.bands),) + image.shape[1:], dtype=image.dtype)
        for j, (band, i) in enumerate(zip(self.bands, self._band_index)):
            if i is None:
                fill = self._fill_values[band]
                out[j] = np.round(fill) if np.issubdtype(image.dtype, np.integer) else fill
            else:
                out[j] = image[i]
        return out

    # -- labels --------------------------------------------------------------------------------------------
    def _check_label(self, sample: TaskSample) -> TaskSample:
        label = sample.label
        where = self._where(sample.key)
        n_cls = self.n_classes
        if self.type == "classification":
            if isinstance(label, np.ndarray) and label.size == 1:
                label = label.reshape(()).item()
            if not isinstance(label, (int, np.integer)) or not 0 <= int(label) < (n_cls or 0):
                raise DataError(f"{where}: class label {label!r} is not an index in [0, {n_cls}) of the task's classes")
            sample.label = int(label)
        elif self.type == "multilabel":
            vec = np.asarray(label, dtype=np.float32).reshape(-1)
            if vec.size != n_cls:
                raise DataError(
                    f"{where}: multi-label vector has {vec.size} entries but the task has {n_cls} classes"
                )
            sample.label = vec
        elif self.type == "regression":
            value = float(np.asarray(label, dtype=float).reshape(()))
            if not math.isfinite(value):
                raise DataError(f"{where}: regression target {label!r} is not a finite number")
            sample.label = value
        else:
            mask = np.asarray(label)
            if mask.shape != sample.image.shape[1:]:
                raise DataError(
                    f"{where}: label mask has shape {mask.shape} but the image is {sample.image.shape[1:]} "
                    "(H, W); masks must match the image grid"
                )
            bad = (mask >= (n_cls or 0)) & (mask != IGNORE_INDEX) | (mask < 0)
            if bad.any():
                raise DataError(
                    f"{where}: label mask holds value(s) {sorted(set(np.unique(mask[bad]).tolist()))[:5]} outside "
                    f"[0, {n_cls}) and not the ignore value {IGNORE_INDEX}"
                )
            sample.label = mask.astype(np.uint8, copy=False)
        return sample

    # -- streaming -----------------------------------------------------------------------------------------
    def iter_split(self, split: str) -> Iterator[TaskSample]:
        keys = self._split_keys[self._check_split(split)]
        chunk: list[TaskSample] = []
        for sample in self._read_keys(keys):
            sample.image = self._arrange_bands(np.asarray(sample.image), sample.key)
            if self._locations is not None and sample.key in self._locations:
                sample.lat, sample.lon = self._locations[sample.key]
            self._check_label(sample)
            chunk.append(sample)
            if len(chunk) >= self._CHUNK:
                yield from self._with_continents(chunk)
                chunk = []
        yield from self._with_continents(chunk)

    def _with_continents(self, chunk: list[TaskSample]) -> Iterator[TaskSample]:
        if self.has_location and chunk:
            lat = np.array([np.nan if s.lat is None else s.lat for s in chunk], dtype=float)
            lon = np.array([np.nan if s.lon is None else s.lon for s in chunk], dtype=float)
            for s, name in zip(chunk, continents_for(lat, lon)):
                s.continent = name
        yield from chunk


# ------------------------------------------------------------------------------ geodiv task folder I/O
def is_task_folder(path: Path) -> bool:
    file = path / TASK_JSON
    if not file.is_file():
        return False
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # a damaged (e.g. truncated) task.json: the geodiv reader says what is wrong with it
    return isinstance(spec, dict) and spec.get("format") == TASK_FORMAT
