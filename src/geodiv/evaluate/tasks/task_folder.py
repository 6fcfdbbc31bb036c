"""geodiv task folders: ``task.json`` + one folder of WebDataset shards per split (``geodiv.data`` format).

Layout::

    TASK/
      task.json     {"format": "geodiv-task", "version": 1, "name": ..., "type": ..., "classes": [...] | null,
                     "bands": [...], "has_location": true, "splits": {"train": "train", "val": "val", "test": "test"},
                     optional "class_groups": {"group": ["class", ...], ...} (classification: look-alike classes)}
      train/        shards written by geodiv.data.write_shards (KEY.npy image, KEY.json metadata with
      val/          lat, lon, continent, ... and the task label as "label"; masks as KEY.label.npy)
      test/

Samples are streamed with ``geodiv.data.iter_samples``; keys are listed from the tar member names
(headers only) so counts and few-shot subsets need no decoding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import (
    SPLITS,
    TASK_FORMAT,
    TASK_JSON,
    TASK_TYPES,
    ReaderTask,
    TaskOptions,
    TaskSample,
    canonical_split,
    check_class_groups,
    is_task_folder,
    split_options,
)

TASK_VERSION = 1


def detect(path: Path) -> bool:
    return path.is_dir() and is_task_folder(path)


def shard_keys(folder: Path) -> list[str]:
    """Sample keys of a geodiv shard folder in shard order (metadata scan: images are not decoded)."""
    from geodiv.data import iter_samples

    return [key for key, _image, _meta in iter_samples(folder, verify=False, decode_image=False)]


def sample_label(meta: dict[str, Any], extra: Any = None) -> Any:
    """The task label of a shard sample: ``meta['label']`` (JSON value, or the ``KEY.label.npy`` mask that
    ``iter_samples`` merges into the metadata)."""
    if isinstance(extra, np.ndarray):
        return extra
    return meta.get("label")


class ShardTask(ReaderTask):
    source = "geodiv"

    def __init__(self, path: Path, options: TaskOptions) -> None:
        self.path = Path(path)
        spec_file = self.path / TASK_JSON
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{spec_file}: cannot read the task description ({err}); the file is damaged or "
                            "truncated: rebuild the task folder (or copy it again)") from None
        for field in ("name", "type", "bands", "splits"):
            if field not in spec:
                raise DataError(f"{spec_file}: missing field {field!r}")
        if spec["type"] not in TASK_TYPES:
            raise DataError(f"{spec_file}: type {spec['type']!r} is not one of {', '.join(TASK_TYPES)}")
        self.name = str(spec["name"])
        self.type = spec["type"]
        self.classes = list(spec["classes"]) if spec.get("classes") is not None else None
        if self.type != "regression" and not self.classes:
            raise DataError(f"{spec_file}: a {self.type} task needs 'classes'")
        self.class_groups = _class_groups(spec.get("class_groups"), self.type, self.classes, spec_file)
        self.source_bands = list(spec["bands"])
        self.info = {k: v for k, v in spec.get("info", {}).items()}
        self._split_dirs = {canonical_split(s): self.path / d for s, d in spec["splits"].items()}
        for split, folder in self._split_dirs.items():
            if not folder.is_dir():
                raise DataError(f"{spec_file}: split {split!r} points at {folder}, which does not exist")
        self._origin: dict[str, str] = {}
        super().__init__(options, source_has_location=bool(spec.get("has_location", True)))

    def _list_keys(self) -> dict[str, list[str]]:
        out = {}
        for split, folder in self._split_dirs.items():
            keys = shard_keys(folder)
            out[split] = keys
            self._origin.update(dict.fromkeys(keys, split))
        return out

    def _where(self, key: str) -> str:
        split = self._origin.get(key)
        return f"{self._split_dirs.get(split, self.path)}: sample {key!r}"

    def _read_keys(self, keys: list[str]) -> Iterator[TaskSample]:
        from geodiv.data import iter_samples

        wanted = set(keys)
        folders = sorted({self._origin[k] for k in keys}, key=SPLITS.index)
        for split in folders:
            for key, image, meta in iter_samples(self._split_dirs[split]):
                if key not in wanted:
                    continue
                label = sample_label(meta)
                if label is None:
                    raise DataError(f"{self._where(key)}: no task label (expected 'label' in KEY.json or KEY.label.npy)")
                lat, lon = meta.get("lat"), meta.get("lon")
                yield TaskSample(
                    key=key, image=np.asarray(image), label=np.asarray(label) if isinstance(label, list) else label,
                    lat=None if lat is None else float(lat), lon=None if lon is None else float(lon),
                )


def _class_groups(value: Any, type: str, classes: list[str] | None, where: Any) -> dict[str, list[str]] | None:
    """``class_groups`` of a task.json (``check_class_groups``; a problem is a ``DataError`` naming the file)."""
    try:
        return check_class_groups(value, type, classes)
    except InputError as err:
        raise DataError(f"{where}: {err}; fix or remove 'class_groups' in task.json") from None


def load(spec: str | os.PathLike[str], **options: Any) -> ShardTask:
    common, extra = split_options(options)
    if extra:
        raise InputError(f"unknown option(s) for a geodiv task folder: {', '.join(sorted(extra))} "
                         f"(known: {', '.join(TaskOptions.model_fields)})")
    return ShardTask(Path(spec), common)


def task_json(name: str, type: str, classes: list[str] | None, bands: list[str], *, has_location: bool = True,
              splits: dict[str, str] | None = None, info: dict[str, Any] | None = None,
              class_groups: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The ``task.json`` content of a geodiv task folder (for writers such as the SimEarth task builder)."""
    if type not in TASK_TYPES:
        raise InputError(f"task type {type!r} is not one of {', '.join(TASK_TYPES)}")
    groups = {"class_groups": check_class_groups(class_groups, type, classes)} if class_groups else {}
    return {
        "format": TASK_FORMAT,
        "version": TASK_VERSION,
        "name": name,
        "type": type,
        "classes": classes,
        **groups,
        "bands": list(bands),
        "has_location": has_location,
        "splits": splits or {s: s for s in SPLITS},
        "info": info or {},
    }


def write_task(
    out: str | os.PathLike[str],
    *,
    name: str,
    type: str,
    classes: list[str] | None,
    bands: list[str],
    splits: dict[str, Iterable[TaskSample]],
    shard_size: int = 1000,
    has_location: bool = True,
    info: dict[str, Any] | None = None,
    class_groups: dict[str, list[str]] | None = None,
) -> Path:
    """Write a geodiv task folder: one shard folder per split (``geodiv.data.write_shards``), then task.json.

    Images must be reflectance x 10000 (stored uint16). Labels go to ``KEY.json`` (``label``) or, for masks,
    ``KEY.label.npy``. ``task.json`` is written last, so an interrupted write leaves no loadable task.
    """
    from geodiv.atomic import write_json
    from geodiv.data import write_shards

    check_class_groups(class_groups, type, classes)  # before any shard is written
    out = Path(out)
    names = {}
    for split, samples in splits.items():
        split = canonical_split(split)
        names[split] = split

        def items(samples: Iterable[TaskSample] = samples) -> Iterator[tuple]:
            for s in samples:
                meta: dict[str, Any] = {"lat": s.lat, "lon": s.lon, "continent": s.continent}
                arrays = {}
                if type == "segmentation":
                    arrays["label"] = np.asarray(s.label, dtype=np.uint8)
                elif type == "multilabel":
                    meta["label"] = np.asarray(s.label).astype(float).tolist()
                else:
                    meta["label"] = s.label.item() if isinstance(s.label, np.generic) else s.label
                yield s.key, s.image, meta, arrays

        write_shards(items(), out / split, shard_size, bands=bands,
                     required_meta=("lat", "lon") if has_location else (), desc=f"{name} {split}")
    write_json(out / TASK_JSON, task_json(name, type, classes, bands, has_location=has_location,
                                          splits=names, info=info, class_groups=class_groups))
    return out
