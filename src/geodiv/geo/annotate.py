"""All four annotations at once: for arrays (``annotate``), one point (``where``) and CSV tables (``annotate_csv``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import atomic_path
from geodiv.errors import InputError
from geodiv.geo._grid import coords, flat_cell, lookup_names
from geodiv.geo.biome import BIOMES, _biome_from_layer, as_biome_layer, biome_index_flat
from geodiv.geo.climate import KOPPEN_ZONES, climate_index_flat
from geodiv.geo.landcover import IGBP_CLASSES, _igbp
from geodiv.geo.regions import CONTINENTS, _continent_index_flat

ANNOTATION_COLUMNS = ("continent", "landcover", "climate", "biome")
_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "lng", "long", "longitude")


def annotate(lat, lon, biome_layer: Any = None) -> dict[str, np.ndarray]:
    """Continent, land cover (name and IGBP code), climate and biome of each point, sharing one lookup.

    Returns arrays shaped like the inputs: ``continent``, ``landcover``, ``climate``, ``biome`` (object;
    ``None`` over the ocean, except land cover which is always a class, ``Water Bodies`` at sea) and
    ``landcover_code`` (uint8).
    """
    lat_a, lon_a = coords(lat, lon)
    user = as_biome_layer(biome_layer)
    shape = lat_a.shape
    lat_f, lon_f = lat_a.ravel(), lon_a.ravel()
    continent = _continent_index_flat(lat_f, lon_f)
    zone = climate_index_flat(lat_f, lon_f, continent)
    code = _igbp().ravel()[flat_cell(lat_f, lon_f)]
    if user is None:
        biome = lookup_names(biome_index_flat(lat_f, lon_f, continent, zone), BIOMES)
    else:
        biome = _biome_from_layer(lat_f, lon_f, user)
    return {
        "continent": lookup_names(continent, CONTINENTS).reshape(shape),
        "landcover": lookup_names(code, IGBP_CLASSES).reshape(shape),
        "landcover_code": code.reshape(shape),
        "climate": lookup_names(zone, KOPPEN_ZONES).reshape(shape),
        "biome": biome.reshape(shape),
    }


def where(lat: float, lon: float, biome_layer: Any = None) -> dict[str, str | None]:
    """The four annotations of one point as plain values: ``continent`` (``None`` over the ocean),
    ``landcover`` (IGBP class name), ``climate`` (Koppen code) and ``biome``."""
    lat_a, lon_a = coords(lat, lon)
    if lat_a.ndim != 0:
        raise InputError(f"where() takes one point; got arrays of shape {lat_a.shape} (use annotate())")
    info = annotate(lat_a, lon_a, biome_layer)
    return {key: info[key].item() for key in ANNOTATION_COLUMNS}


def annotate_csv(
    in_csv: str | os.PathLike[str], out_csv: str | os.PathLike[str], biome_layer: Any = None
) -> int:
    """Copy a CSV with ``lat``/``lon`` columns to ``out_csv`` with ``continent``, ``landcover``, ``climate`` and
    ``biome`` columns added (replaced if present). Returns the number of rows. Any bad row raises
    ``InputError`` naming the file, row and value, and nothing is written."""
    import pandas as pd

    src = Path(in_csv)
    if not src.exists():
        raise InputError(f"CSV file {src} not found")
    try:
        table = pd.read_csv(src, dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file
        raise InputError(f"cannot read {src} as CSV: {err}") from None
    lat_col = _find_column(table.columns, _LAT_NAMES, src, "latitude")
    lon_col = _find_column(table.columns, _LON_NAMES, src, "longitude")
    lat = _numbers(table[lat_col], src, lat_col)
    lon = _numbers(table[lon_col], src, lon_col)
    bad_lat, bad_lon = np.abs(lat) > 90, np.abs(lon) > 180
    if bad_lat.any() or bad_lon.any():
        row = int(np.argmax(bad_lat | bad_lon))
        what = "latitude must be in [-90, 90]" if bad_lat[row] else "longitude must be in [-180, 180]"
        n_bad = int((bad_lat | bad_lon).sum())
        raise InputError(
            f"{src}, data row {row + 1} (line {row + 2}): {lat_col}={lat[row]:g}, {lon_col}={lon[row]:g} is not a "
            f"valid location ({what}; {n_bad} such row{'s' if n_bad > 1 else ''}). Fix or drop the rows."
        )
    info = annotate(lat, lon, biome_layer)
    for key in ANNOTATION_COLUMNS:
        table[key] = ["" if v is None else v for v in info[key]]
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return len(table)


def _find_column(columns, names: tuple[str, ...], src: Path, what: str) -> str:
    by_lower = {str(c).strip().lower(): c for c in columns}
    for name in names:
        if name in by_lower:
            return by_lower[name]
    raise InputError(
        f"{src} has no {what} column: expected one named {' or '.join(names)} (case-insensitive); "
        f"its columns are {list(columns)}"
    )


def _numbers(column, src: Path, name: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(
            f"{src}, data row {row + 1} (line {row + 2}): column {name!r} holds {column.iloc[row]!r}, "
            f"not a number ({int(bad.sum())} such rows). Fix or drop them."
        )
    return values
