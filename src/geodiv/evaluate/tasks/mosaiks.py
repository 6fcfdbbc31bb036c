"""MOSAIKS-style label tables: one row per grid cell with lat, lon and a value (e.g. population density).

The table (CSV or Parquet) has ``lat``/``lon`` (or ``latitude``/``longitude``), optionally ``id``, and the
label column (``label_column``; by default ``value``/``label``/``y``/``target``/``population``, else the one
numeric column left). ``label_transform='log1p'`` regresses log(1 + value), as MOSAIKS does for skewed
outcomes. The cells carry no imagery; ``imagery=`` names where it is:

- a GeoTIFF manifest (CSV/Parquet with ``id`` and ``path`` columns), joined on ``id``; or
- a folder of geodiv shards (``geodiv.data`` format, e.g. written by the data stage's STAC path
  ``geodiv.data.sources.stac`` for the table's cells): each shard sample is matched to the nearest cell
  within ``max_distance_km`` (default 1 km, about a MOSAIKS 0.01-degree cell) by its lat/lon.

Splits are random (``split_fractions``) unless the table has a ``split`` column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geodiv.data.catalog import EARTH_RADIUS_KM
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import ReaderTask, TaskOptions, TaskSample, canonical_split, split_options
from geodiv.evaluate.tasks.geotiff_manifest import ManifestTask, find_column, read_table, readable_table

LABEL_COLUMNS = ("value", "label", "y", "target", "population")


def detect(path: Path) -> bool:
    table = readable_table(path)
    if table is None:
        return False
    has = lambda role: find_column(table, role, path=path, required=False) is not None  # noqa: E731
    return has("lat") and has("lon") and not has("path")


def label_column(table, given: str | None, *, path: Path) -> str:
    lower = {str(c).lower(): c for c in table.columns}
    if given is not None:
        if given.lower() not in lower:
            raise InputError(f"{path}: no column {given!r}; the table has {', '.join(map(str, table.columns))}")
        return lower[given.lower()]
    for name in LABEL_COLUMNS:
        if name in lower:
            return lower[name]
    skip = {"id", "key", "sample_id", "lat", "latitude", "lon", "lng", "long", "longitude", "split", "unnamed: 0"}
    numeric = [c for c in table.columns if str(c).lower() not in skip and np.issubdtype(table[c].dtype, np.number)]
    if len(numeric) == 1:
        return numeric[0]
    raise InputError(
        f"{path}: cannot tell which column is the label (candidates: {', '.join(map(str, numeric)) or 'none'}); "
        "pass label_column=NAME"
    )


def _unit_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


class MosaiksShardTask(ReaderTask):
    """Cells matched to shard samples by location; images streamed from the shards."""

    source = "mosaiks"
    type = "regression"
    classes = None

    def __init__(self, path: Path, table: dict[str, np.ndarray], shards: Path, options: TaskOptions, *,
                 name: str, bands: list[str], max_distance_km: float) -> None:
        self.path = Path(path)
        self.name = name
        self.source_bands = bands
        self.info = {"imagery": str(shards), "max_distance_km": max_distance_km}
        self._table = table
        self._shards = Path(shards)
        self._max_km = max_distance_km
        self._match: dict[str, int] = {}
        super().__init__(options, source_has_location=True)

    def _list_keys(self) -> dict[str, list[str]]:
        from scipy.spatial import cKDTree

        from geodiv.data import iter_samples

        tree = cKDTree(_unit_xyz(self._table["lat"], self._table["lon"]))
        chord = 2 * np.sin(self._max_km / EARTH_RADIUS_KM / 2)
        keys, lat, lon = [], [], []
        for key, _image, meta in iter_samples(self._shards, verify=False, decode_image=False):
            if meta.get("lat") is not None and meta.get("lon") is not None:
                keys.append(key)
                lat.append(float(meta["lat"]))
                lon.append(float(meta["lon"]))
        if keys:
            dist, rows = tree.query(_unit_xyz(np.array(lat), np.array(lon)))
            self._match = {k: int(r) for k, d, r in zip(keys, dist, rows) if d <= chord}
        if not self._match:
            raise DataError(
                f"{self.path}: no shard sample in {self._shards} lies within {self._max_km} km of a table cell; "
                "fetch imagery for the table's cells (geodiv.data.sources.stac) or raise max_distance_km"
            )
        self.info["matched"] = len(self._match)
        self.info["cells"] = len(self._table["lat"])
        splits = self._table.get("split")
        if splits is None:
            return {"all": list(self._match)}
        out: dict[str, list[str]] = {}
        for key, row in self._match.items():
            out.setdefault(splits[row], []).append(key)
        return out

    def _read_keys(self, keys: list[str]) -> Iterator[TaskSample]:
        from geodiv.data import iter_samples

        wanted = set(keys)
        for key, image, _meta in iter_samples(self._shards):
            if key in wanted:
                row = self._match[key]
                yield TaskSample(key=key, image=np.asarray(image), label=float(self._table["label"][row]),
                                 lat=float(self._table["lat"][row]), lon=float(self._table["lon"][row]))

    def _where(self, key: str) -> str:
        row = self._match.get(key)
        return f"{self.path}: row {row + 2 if row is not None else '?'} (shard sample {key!r} in {self._shards})"


def load(spec: str | os.PathLike[str], **options: Any) -> ReaderTask:
    import pandas as pd

    common, extra = split_options(options)
    known = {"imagery", "label_column", "label_transform", "max_distance_km", "name", "file_bands", "image_root",
             "band_order"}
    if set(extra) - known:
        raise InputError(f"unknown option(s) for a MOSAIKS table: {', '.join(sorted(set(extra) - known))} (known: {', '.join(sorted(known))})")
    path = Path(spec)
    table = read_table(path)
    lat_col = find_column(table, "lat", path=path)
    lon_col = find_column(table, "lon", path=path)
    value_col = label_column(table, extra.get("label_column"), path=path)
    values = table[value_col].to_numpy(float)
    transform: Literal["none", "log1p"] = extra.get("label_transform", "none")
    if transform not in ("none", "log1p"):
        raise InputError(f"label_transform must be 'none' or 'log1p', got {transform!r}")
    if transform == "log1p":
        if (values < 0).any():
            i = int(np.flatnonzero(values < 0)[0])
            raise DataError(f"{path}: row {i + 2}: {value_col} = {values[i]} < 0 cannot be log1p-transformed")
        values = np.log1p(values)
    name = extra.get("name", f"mosaiks-{value_col}")
    imagery = extra.get("imagery")
    if imagery is None:
        raise InputError(
            f"{path} is a MOSAIKS label table without imagery; pass imagery=MANIFEST (id,path GeoTIFF table) or "
            "imagery=SHARDS_DIR (geodiv shards for the cells, e.g. from geodiv.data.sources.stac)"
        )
    imagery = Path(imagery)
    split_col = find_column(table, "split", path=path, required=False)
    if imagery.is_dir():
        from geodiv.data import read_manifest

        manifest = read_manifest(imagery)
        bands = list(extra.get("file_bands") or manifest.get("bands") or [])
        if not bands:
            raise InputError(f"{imagery}: the shard manifest names no bands; pass file_bands=[...]")
        cells = {"lat": table[lat_col].to_numpy(float), "lon": table[lon_col].to_numpy(float), "label": values}
        if split_col is not None:
            cells["split"] = np.array([canonical_split(str(s)) for s in table[split_col]])
        return MosaiksShardTask(path, cells, imagery, common, name=name, bands=bands,
                                max_distance_km=float(extra.get("max_distance_km", 1.0)))
    id_col = find_column(table, "id", path=path)
    images = read_table(imagery)
    img_id = find_column(images, "id", path=imagery)
    img_path = find_column(images, "path", path=imagery)
    joined = pd.DataFrame({
        "id": table[id_col].astype(str), "lat": table[lat_col].to_numpy(float),
        "lon": table[lon_col].to_numpy(float), "label": values,
    })
    if split_col is not None:
        joined["split"] = table[split_col].astype(str)
    paths = dict(zip(images[img_id].astype(str), images[img_path].astype(str)))
    missing = [k for k in joined["id"] if k not in paths]
    if missing:
        raise DataError(f"{imagery}: no image for {len(missing)} cell(s) of {path}, e.g. id {missing[0]!r}")
    joined["path"] = [paths[k] for k in joined["id"]]
    task = ManifestTask(path, joined, common, name=name, task_type="regression",
                        image_root=extra.get("image_root", imagery.parent), file_bands=extra.get("file_bands"),
                        band_order=extra.get("band_order"))
    task.source = "mosaiks"
    task.info["imagery"] = str(imagery)
    return task
