"""Any GeoTIFF collection described by a manifest table (CSV or Parquet), and the shared table reader.

Columns (names case-insensitive; alternatives in brackets):

- ``path`` [image_path, file, image]: the GeoTIFF, absolute or relative to ``image_root`` (default: the
  manifest's folder); a leading part of the path that does not exist is dropped until the file is found,
  so manifests written on another machine still resolve.
- ``label`` [target, y, value, category, class]: class name or index (classification), ``;``-separated
  names (multilabel), a number (regression), or the path of a single-band mask GeoTIFF (segmentation).
- optional ``id`` [key, sample_id]: sample key (default: the file name without extension, or the path
  when names repeat); ``lat``/``lon`` [latitude/longitude] (default: the centre of the georeference);
  ``split`` (train/val/test; without it the rows are split randomly by ``split_fractions``).

The task type is inferred from the label column unless ``task_type`` is given; ``classes`` fixes class
names and their order. Image bands: ``file_bands`` (a list) or ``band_order`` (``standard``, ``eurosat`` or a
list), else the GeoTIFF band descriptions when they name Sentinel-2 bands, else by count (13: the standard
order with a warning, or EuroSAT-MS's B1..B12, B8A when the files sit in EuroSAT's ``<Class>/<Class>_<n>.tif``
layout, said in ``info['band_order']``; 12: without B10; 10: SatMAE's ten).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.bands import EUROSAT_MS_BANDS, canonical_band
from geodiv.data.sources.geotiff import file_band_names, read_raster, resolve_path
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import (
    TASK_TYPES,
    ReaderTask,
    TaskOptions,
    TaskSample,
    canonical_split,
    split_options,
)

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("path", "image_path", "file", "image", "filename"),
    "label": ("label", "target", "y", "value", "category", "class"),
    "id": ("id", "key", "sample_id"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "split": ("split", "subset", "fold"),
}
MASK_SUFFIXES = (".tif", ".tiff", ".npy")


def read_table(path: Path):
    """A CSV or Parquet file as a pandas DataFrame (clear error on anything else)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as err:  # pandas/pyarrow raise many types for broken files
        raise DataError(f"{path}: cannot read the table ({type(err).__name__}: {err})") from None
    raise InputError(f"{path}: expected a .csv or .parquet table")


def find_column(table, role: str, *, path: Path, required: bool = True, given: str | None = None) -> str | None:
    lower = {str(c).lower(): c for c in table.columns}
    for name in ((given,) if given else COLUMN_ALIASES[role]):
        if name is not None and name.lower() in lower:
            return lower[name.lower()]
    if required:
        raise InputError(
            f"{path}: no {role!r} column ({given!r} asked for)" if given else
            f"{path}: no {role!r} column; expected one of {', '.join(COLUMN_ALIASES[role])}; "
            f"the table has {', '.join(map(str, table.columns))}"
        )
    return None


def readable_table(path: Path):
    """The table at ``path`` when it is a readable CSV/Parquet file, else None (the table detectors' shared test)."""
    if not (path.is_file() and path.suffix.lower() in (".csv", ".parquet", ".pq")):
        return None
    try:
        return read_table(path)
    except Exception:
        return None


def detect(path: Path) -> bool:
    table = readable_table(path)
    return table is not None and find_column(table, "path", path=path, required=False) is not None


class ManifestTask(ReaderTask):
    """A task whose samples are rows of a table: key, image path, label, optional lat/lon and split."""

    source = "geotiff"

    def __init__(
        self,
        path: Path,
        table,
        options: TaskOptions,
        *,
        name: str | None = None,
        task_type: str | None = None,
        classes: list[str] | None = None,
        image_root: str | os.PathLike[str] | None = None,
        file_bands: list[str] | None = None,
        columns: dict[str, str] | None = None,
        reader=None,
        band_order: str | list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.info = {}
        self.root = Path(image_root) if image_root is not None else self.path.parent
        self._reader = reader or read_raster
        columns = columns or {}
        col = {role: find_column(table, role, path=self.path, required=role in ("path", "label"), given=columns.get(role))
               for role in COLUMN_ALIASES}
        if len(table) == 0:
            raise DataError(f"{self.path}: the manifest has no rows")
        self._rows = self._normalise(table, col)
        self.type, self.classes, self._labels = self._infer_labels(table[col["label"]], task_type, classes)
        has_coords = self._rows["lat"] is not None
        georeferenced = False
        if file_bands is not None and has_coords and band_order is None:
            self.source_bands = [canonical_band(b) for b in file_bands]
        else:  # the first image tells the band count/names and whether files carry a georeference
            import rasterio
            from rasterio.errors import NotGeoreferencedWarning

            first = resolve_path(self._rows["path"][0], self.root)
            if not first.is_file():
                raise DataError(f"{self._where(self._rows['key'][0])}: image {first} does not exist")
            with warnings.catch_warnings(), rasterio.open(first) as src:
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.source_bands = file_band_names(src, file_bands, str(self.path), option="file_bands",
                                                    band_order=band_order, guess=True, error=InputError)
                georeferenced = src.crs is not None
        if self.source_bands == list(EUROSAT_MS_BANDS):
            self.info["band_order"] = "EuroSAT-MS (B1..B12, B8A)"
        super().__init__(options, source_has_location=has_coords or georeferenced)

    # -- table -----------------------------------------------------------------------------------------------
    def _normalise(self, table, col: dict[str, str | None]) -> dict[str, Any]:
        paths = [str(p) for p in table[col["path"]]]
        if col["id"] is not None:
            keys = [str(k) for k in table[col["id"]]]
        else:
            stems = [Path(p).stem for p in paths]
            keys = stems if len(set(stems)) == len(stems) else paths
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in seen:
                raise DataError(f"{self.path}: rows {seen[k] + 2} and {i + 2} share the sample id {k!r}; ids must be unique")
            seen[k] = i
        lat = lon = None
        if col["lat"] is not None and col["lon"] is not None:
            lat = table[col["lat"]].to_numpy(float)
            lon = table[col["lon"]].to_numpy(float)
            bad = ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{self.path}: row {i + 2} (sample {keys[i]!r}): lat/lon ({lat[i]}, {lon[i]}) out of range")
        splits = None
        if col["split"] is not None:
            splits = []
            for i, s in enumerate(table[col["split"]]):
                try:
                    splits.append(canonical_split(str(s)))
                except InputError:
                    raise DataError(f"{self.path}: row {i + 2} (sample {keys[i]!r}): unknown split {s!r}; use train/val/test") from None
        self._index = {k: i for i, k in enumerate(keys)}
        return {"key": keys, "path": paths, "lat": lat, "lon": lon, "split": splits}

    def _infer_labels(self, column, task_type: str | None, classes: list[str] | None):
        values = list(column)
        if task_type is not None and task_type not in TASK_TYPES:
            raise InputError(f"task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}")
        is_str = all(isinstance(v, str) for v in values)
        if task_type is None:
            if is_str and all(v.lower().endswith(MASK_SUFFIXES) for v in values):
                task_type = "segmentation"
            elif is_str and any(";" in v for v in values):
                task_type = "multilabel"
            elif is_str:
                task_type = "classification"
            else:
                arr = np.asarray(values, dtype=float)
                integral = np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
                task_type = "classification" if integral and classes is not None else "regression"
        if task_type == "regression":
            return task_type, None, values
        if task_type == "segmentation":
            if classes is None:
                raise InputError(f"{self.path}: a segmentation manifest needs classes=[...] (names of the mask values 0..K-1)")
            return task_type, list(classes), values
        if task_type == "multilabel":
            tokens = [[t.strip() for t in str(v).split(";") if t.strip()] for v in values]
            names = list(classes) if classes is not None else sorted({t for ts in tokens for t in ts})
            index = {c: i for i, c in enumerate(names)}
            labels = []
            for i, ts in enumerate(tokens):
                vec = np.zeros(len(names), dtype=np.float32)
                for t in ts:
                    if t not in index:
                        raise DataError(f"{self.path}: row {i + 2}: label {t!r} is not one of the classes")
                    vec[index[t]] = 1
                labels.append(vec)
            return task_type, names, labels
        if is_str:
            names = list(classes) if classes is not None else sorted(set(values))
            index = {c: i for i, c in enumerate(names)}
            labels = []
            for i, v in enumerate(values):
                if v not in index:
                    raise DataError(f"{self.path}: row {i + 2}: class {v!r} is not one of the task's classes ({', '.join(names[:10])}...)")
                labels.append(index[v])
            return task_type, names, labels
        ints = [int(v) for v in values]
        names = list(classes) if classes is not None else [str(i) for i in range(max(ints) + 1)]
        return task_type, names, ints

    # -- ReaderTask hooks ------------------------------------------------------------------------------------
    def _list_keys(self) -> dict[str, list[str]]:
        keys = self._rows["key"]
        if self._rows["split"] is None:
            return {"all": list(keys)}
        out: dict[str, list[str]] = {}
        for k, s in zip(keys, self._rows["split"]):
            out.setdefault(s, []).append(k)
        return out

    def _where(self, key: str) -> str:
        i = self._index[key]
        return f"{self.path}: row {i + 2} (sample {key!r}, image {self._rows['path'][i]})"

    def _read(self, key: str) -> TaskSample:
        i = self._index[key]
        where = self._where(key)
        image, lat, lon = self._reader(resolve_path(self._rows["path"][i], self.root), where=where)
        if self._rows["lat"] is not None:
            lat, lon = float(self._rows["lat"][i]), float(self._rows["lon"][i])
        label = self._labels[i]
        if self.type == "segmentation":
            mask_path = resolve_path(str(label), self.root)
            if mask_path.suffix.lower() == ".npy":
                label = np.load(mask_path, allow_pickle=False)
            else:
                mask, _, _ = read_raster(mask_path, where=where)
                if mask.shape[0] != 1:
                    raise DataError(f"{where}: mask {mask_path} has {mask.shape[0]} bands, expected 1")
                label = mask[0]
        return TaskSample(key=key, image=image, label=label, lat=lat, lon=lon)


def load(spec: str | os.PathLike[str], **options: Any) -> ManifestTask:
    common, extra = split_options(options)
    path = Path(spec)
    known = {"name", "task_type", "classes", "image_root", "file_bands", "columns", "band_order"}
    unknown = set(extra) - known
    if unknown:
        raise InputError(f"unknown option(s) for a GeoTIFF manifest: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return ManifestTask(path, read_table(path), common, **extra)
