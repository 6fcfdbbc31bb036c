"""The task-reader registry: every task format geodiv reads, detection in priority order, and ``load_task``.

The built-in readers (one module each in this package, built on :mod:`geodiv.evaluate.tasks.base`) and the
SimEarth task generator are registered here, explicitly; other readers register with :func:`register_reader`.
Detection runs in priority order (most specific layouts first); docs/tasks.md describes each format.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodiv.errors import InputError
from geodiv.evaluate import simearth_tasks
from geodiv.evaluate.tasks import bigearthnet, fmow, forty, geobench, geotiff_manifest, mosaiks, task_folder
from geodiv.evaluate.tasks.base import Task


@dataclass
class ReaderEntry:
    """A registered task reader: ``load(spec, **options) -> Task``; ``detect(path) -> bool`` for paths;
    ``task_names()`` for named (generated) tasks such as SimEarth's."""

    name: str
    load: Callable[..., Task]
    detect: Callable[[Path], bool] | None = None
    task_names: Callable[[], Iterable[str]] | None = None
    description: str = ""
    priority: int = field(default=100)


_READERS: dict[str, ReaderEntry] = {}


def register_reader(
    name: str,
    load: Callable[..., Task],
    *,
    detect: Callable[[Path], bool] | None = None,
    task_names: Callable[[], Iterable[str]] | Iterable[str] | None = None,
    description: str = "",
    priority: int = 100,
) -> None:
    """Register a task reader (re-registering a name replaces it).

    ``load(spec, **options)`` receives the path (for path readers) or the task name (for named readers)
    and all options. Path readers give ``detect``; detectors run in ``priority`` order (lower first).
    Named readers give ``task_names`` (the names they serve; an iterable or a function returning one).
    """
    names = task_names
    if names is not None and not callable(names):
        fixed = tuple(names)

        def names() -> Iterable[str]:
            return fixed

    _READERS[name] = ReaderEntry(name, load, detect, names, description, priority)


def readers() -> dict[str, ReaderEntry]:
    """The registered readers."""
    return dict(_READERS)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name of the registered reader that recognises ``path``; a clear error if none does."""
    path = Path(path)
    for entry in sorted(_READERS.values(), key=lambda e: e.priority):
        if entry.detect is not None and entry.detect(path):
            return entry.name
    known = "".join(f"\n  - {e.name}: {e.description}" for e in sorted(_READERS.values(), key=lambda e: e.priority)
                    if e.detect is not None)
    raise InputError(
        f"cannot tell the task format of {path}: it matches none of the supported formats and versions:{known}\n"
        "See docs/tasks.md, or pass format=NAME to load_task."
    )


def load_task(spec: str | os.PathLike[str] | Task, *, format: str | None = None, **options: Any) -> Task:
    """A :class:`Task` from a SimEarth task name (``"landcover"``, or ``"simearth:landcover"``) or a path.

    Paths are recognised by layout (GEO-Bench task folder, fMoW-Sentinel CSV, ForTy TFRecords, MOSAIKS
    table, BigEarthNet folder, GeoTIFF manifest, geodiv task folder); ``format`` forces a reader. Options:
    see :class:`TaskOptions` (splits, few-shot ``train_fraction``, ``bands``, ``fill_missing_bands``,
    ``locations``) plus the chosen reader's own keywords (docs/tasks.md).
    """
    if isinstance(spec, Task):
        return spec
    if format is not None:
        if format not in _READERS:
            raise InputError(f"unknown task format {format!r}; known: {', '.join(sorted(_READERS))}")
        return _READERS[format].load(spec, **options)
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.exists():
        return _READERS[detect_format(path)].load(path, **options)
    reader_name, _, task_name = text.partition(":")
    if task_name and reader_name in _READERS:
        return _READERS[reader_name].load(task_name, **options)
    for entry in _READERS.values():
        if entry.task_names is not None and text in set(entry.task_names()):
            return entry.load(text, **options)
    named = sorted(n for e in _READERS.values() if e.task_names is not None for n in e.task_names())
    raise InputError(
        f"task {text!r} is neither an existing path nor a known task name"
        + (f" (named tasks: {', '.join(named)})" if named else "")
        + "; give a SimEarth task name or the path of a task folder / manifest (docs/tasks.md)"
    )


#: The built-in path readers in detection order: (name, reader module with ``load``/``detect``, description).
_BUILT_IN = (
    ("geodiv", task_folder, "geodiv task folder: task.json + split shard folders"),
    ("geobench", geobench, "GEO-Bench v1 task folder (geobench 1.0.x and older ccb files): task_specs.pkl, "
                           "*_partition.json, *.hdf5"),
    ("forty", forty, "ForTy v1 TFRecord shards (*.tfrecord*; TFDS tensor encodings none/bytes/zlib)"),
    ("bigearthnet", bigearthnet, "BigEarthNet-S2 v1.0 folder of patch folders with *_labels_metadata.json, or "
                                 "BigEarthNet v2.0 (reBEN) folder with metadata.parquet + BigEarthNet-S2/<tile>/<patch>/"),
    ("fmow", fmow, "fMoW-Sentinel (SatMAE's release) CSV (category, location_id, image_id[, image_path], polygon) "
                   "or folder of them"),
    ("mosaiks", mosaiks, "MOSAIKS-style label table (lat, lon, value) + imagery"),
    ("geotiff", geotiff_manifest, "GeoTIFF manifest CSV/Parquet (path, label[, lat, lon, split])"),
)
for _rank, (_name, _reader, _description) in enumerate(_BUILT_IN, start=1):
    register_reader(_name, _reader.load, detect=_reader.detect, priority=10 * _rank, description=_description)
register_reader("simearth", simearth_tasks._load_named, task_names=simearth_tasks._task_names,
                description="SimEarth tasks generated on demand (composition: landcover, treecover, "
                "foresttype, builtup; structure: scene, settlement)")
