"""Catalogs: GeoParquet tables of candidate samples, and the location rules between datasets.

A catalog has one row per candidate sample: ``id`` (a shard key), ``lat``, ``lon``, ``source`` (``simearth:SEED``,
a file path, or ``stac:ITEM#ASSET``), ``date`` (ISO string or None), the ``geodiv.geo`` annotations
(``continent``, ``landcover``, ``landcover_code``, ``climate``, ``biome``), any source-specific columns (e.g.
``label``), and a point ``geometry`` in EPSG:4326. It is written with ``GeoDataFrame.to_parquet`` (GeoParquet).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import atomic_path
from geodiv.errors import DataError, InputError

EARTH_RADIUS_KM = 6371.0088
ANNOTATIONS: tuple[str, ...] = ("continent", "landcover", "landcover_code", "climate", "biome")
BASE_COLUMNS: tuple[str, ...] = ("id", "lat", "lon", "source", "date")
#: Accepted names of the latitude / longitude columns (tables) and fields (metadata).
LAT_NAMES: tuple[str, ...] = ("lat", "latitude")
LON_NAMES: tuple[str, ...] = ("lon", "lng", "longitude")


def location_ids(lat: np.ndarray, lon: np.ndarray, prefix: str = "p") -> np.ndarray:
    """Stable ids from micro-degree coordinates: the same location gets the same id in every dataset."""
    a = np.round((np.asarray(lat, np.float64) + 90.0) * 1e6).astype(np.int64)
    b = np.round((np.asarray(lon, np.float64) + 180.0) * 1e6).astype(np.int64)
    return np.array([f"{prefix}{x:09d}_{y:09d}" for x, y in zip(a, b)], dtype=object)


def make_catalog(
    lat: Any,
    lon: Any,
    source: Any,
    *,
    ids: Sequence[str] | None = None,
    date: Any = None,
    columns: dict[str, Any] | None = None,
    annotate: bool = True,
    biome_layer: Any = None,
):
    """A GeoDataFrame catalog; ``annotate`` adds the ``geodiv.geo`` annotations of every location."""
    import geopandas as gpd

    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    if lat_a.shape != lon_a.shape:
        raise InputError(f"catalog: {lat_a.size} latitudes but {lon_a.size} longitudes")
    bad = ~(np.isfinite(lat_a) & np.isfinite(lon_a)) | (np.abs(lat_a) > 90) | (np.abs(lon_a) > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"catalog row {i}: invalid location ({lat_a[i]}, {lon_a[i]})")
    n = lat_a.size
    data: dict[str, Any] = {
        "id": np.asarray(ids, dtype=object) if ids is not None else location_ids(lat_a, lon_a),
        "lat": lat_a,
        "lon": lon_a,
        "source": _broadcast(source, n, "source"),
        "date": _broadcast(date, n, "date"),
    }
    if len(set(data["id"])) != n:
        raise InputError("catalog ids must be unique (two candidates share an id or a micro-degree location)")
    if annotate:
        from geodiv import geo

        ann = geo.annotate(lat_a, lon_a, biome_layer=biome_layer) if n else {k: np.empty(0, object) for k in ANNOTATIONS}
        for k in ANNOTATIONS:
            data[k] = np.asarray(ann[k]).astype(np.int64) if k == "landcover_code" else np.asarray(ann[k], object)
    for k, v in (columns or {}).items():
        data[k] = _broadcast(v, n, k)
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(lon_a, lat_a), crs="EPSG:4326")


def _broadcast(value: Any, n: int, name: str) -> np.ndarray:
    if value is None or isinstance(value, (str, int, float)):
        return np.full(n, value, dtype=object)
    arr = np.asarray(value, dtype=object).ravel()
    if arr.size != n:
        raise InputError(f"catalog column {name!r} has {arr.size} values for {n} rows")
    return arr


def latlon_columns(table: Any) -> tuple[str | None, str | None]:
    """The table's latitude and longitude column names (any case of ``LAT_NAMES`` / ``LON_NAMES``), or None."""
    cols = {c.lower(): c for c in table.columns}
    lat_c = next((cols[c] for c in LAT_NAMES if c in cols), None)
    lon_c = next((cols[c] for c in LON_NAMES if c in cols), None)
    return lat_c, lon_c


def row_meta(row: Any, extra_columns: Sequence[str] = ()) -> dict[str, Any]:
    """JSON metadata of a catalog row: location, source, date, annotations and the listed extra columns."""
    meta: dict[str, Any] = {}
    for k in (*BASE_COLUMNS, *ANNOTATIONS, *extra_columns):
        if k in row.index:
            v = row[k]
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                v = None
            meta[k] = v
    return meta


def write_catalog(catalog, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        catalog.to_parquet(tmp, index=False)
    return path


def read_catalog(path: str | os.PathLike[str], annotate: bool = True):
    """A catalog from GeoParquet, plain Parquet or CSV (needs ``lat``/``lon``); missing annotations are added."""
    import geopandas as gpd
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"catalog {path} does not exist")
    if path.suffix.lower() in (".parquet", ".geoparquet"):
        try:
            table = gpd.read_parquet(path)
        except (ValueError, KeyError):  # plain parquet without geo metadata
            table = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        table = pd.read_csv(path)
    else:
        raise InputError(f"catalog {path}: use .parquet (GeoParquet) or .csv")
    lat_c, lon_c = latlon_columns(table)
    if lat_c is None or lon_c is None:
        raise InputError(f"catalog {path} needs lat and lon columns; it has {', '.join(map(str, table.columns))}")
    have_ann = all(k in table.columns for k in ANNOTATIONS)
    extra = {c: table[c].to_numpy() for c in table.columns if c not in (*BASE_COLUMNS, *ANNOTATIONS, "geometry", lat_c, lon_c)}
    cat = make_catalog(
        table[lat_c].to_numpy(),
        table[lon_c].to_numpy(),
        table["source"].to_numpy() if "source" in table.columns else str(path),
        ids=table["id"].astype(str).to_numpy() if "id" in table.columns else None,
        date=table["date"].to_numpy() if "date" in table.columns else None,
        columns=extra,
        annotate=annotate and not have_ann,
    )
    if have_ann:
        for k in ANNOTATIONS:
            cat[k] = table[k].to_numpy()
    return cat


# ------------------------------------------------------------------------------------------- distances
def nearest_km(lat_ref: Any, lon_ref: Any, lat: Any, lon: Any) -> np.ndarray:
    """Great-circle distance (km) from each (lat, lon) to its nearest reference point (inf without references)."""
    from sklearn.neighbors import BallTree

    lat = np.asarray(lat, np.float64).ravel()
    lon = np.asarray(lon, np.float64).ravel()
    ref = np.radians(np.column_stack([np.asarray(lat_ref, np.float64).ravel(), np.asarray(lon_ref, np.float64).ravel()]))
    if ref.shape[0] == 0 or lat.size == 0:
        return np.full(lat.size, np.inf)
    tree = BallTree(ref, metric="haversine")
    dist, _ = tree.query(np.radians(np.column_stack([lat, lon])), k=1)
    return dist[:, 0] * EARTH_RADIUS_KM


def assert_disjoint(lat_a: Any, lon_a: Any, lat_b: Any, lon_b: Any, min_km: float = 1.0) -> None:
    """Raise ``DataError`` when any location of set B lies within ``min_km`` of a location of set A.

    Used so that pretraining and downstream locations never overlap (a patch covers about 1 km).
    """
    d = nearest_km(lat_a, lon_a, lat_b, lon_b)
    close = np.flatnonzero(d < min_km)
    if close.size:
        i = int(close[0])
        lat_b = np.asarray(lat_b, np.float64).ravel()
        lon_b = np.asarray(lon_b, np.float64).ravel()
        raise DataError(
            f"{close.size} location(s) of the second set lie within {min_km} km of the first set (e.g. "
            f"({lat_b[i]:.5f}, {lon_b[i]:.5f}) is {d[i]:.3f} km away); pretraining and downstream locations must"
            " not overlap: exclude them (DatasetConfig.exclude) or draw with another seed"
        )


def exclusion_points(paths: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Locations to keep away from: catalogs (.parquet/.csv) or geodiv dataset folders (their sample metadata)."""
    lats, lons = [np.empty(0)], [np.empty(0)]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            from geodiv.data.shard_reader import iter_samples

            pts = [(m["lat"], m["lon"]) for _, _, m in iter_samples(p, verify=False, decode_image=False)]
            arr = np.asarray(pts, np.float64).reshape(-1, 2)
            lats.append(arr[:, 0])
            lons.append(arr[:, 1])
        else:
            cat = read_catalog(p, annotate=False)
            lats.append(cat["lat"].to_numpy())
            lons.append(cat["lon"].to_numpy())
    return np.concatenate(lats), np.concatenate(lons)
