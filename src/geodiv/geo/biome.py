"""Biomes: the 14 WWF/RESOLVE (Dinerstein et al. 2017) biome names.

By default a biome is derived from the Koppen-Geiger zone, the IGBP land-cover class, the latitude (low
latitudes with a cold climate are high mountains) and a coastal flag (mangroves) through ``crosswalk_biome``;
docs/geography.md gives the reasoning rule by rule. A user can instead supply a biome layer: a vector file
with a biome column (e.g. RESOLVE Ecoregions 2017, column ``BIOME_NAME``) or a classified raster whose pixel
values are RESOLVE biome numbers 1..14.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.errors import InputError
from geodiv.geo._grid import coords, flat_cell, lookup_names
from geodiv.geo.climate import KOPPEN_ZONES, climate_index_flat
from geodiv.geo.landcover import _igbp
from geodiv.geo.regions import _continent_index_flat, _first_hit, coastal_mask

# Order = RESOLVE 2017 BIOME_NUM 1..14.
BIOMES: tuple[str, ...] = (
    "Tropical & Subtropical Moist Broadleaf Forests",
    "Tropical & Subtropical Dry Broadleaf Forests",
    "Tropical & Subtropical Coniferous Forests",
    "Temperate Broadleaf & Mixed Forests",
    "Temperate Conifer Forests",
    "Boreal Forests/Taiga",
    "Tropical & Subtropical Grasslands, Savannas & Shrublands",
    "Temperate Grasslands, Savannas & Shrublands",
    "Flooded Grasslands & Savannas",
    "Montane Grasslands & Shrublands",
    "Tundra",
    "Mediterranean Forests, Woodlands & Scrub",
    "Deserts & Xeric Shrublands",
    "Mangroves",
)
(TROP_MOIST, TROP_DRY, TROP_CONIFER, TEMP_BROADLEAF, TEMP_CONIFER, BOREAL, TROP_GRASS, TEMP_GRASS, FLOODED, MONTANE,
 TUNDRA, MEDITERRANEAN, DESERT, MANGROVES) = BIOMES  # fmt: skip

# IGBP groups. Water (0) inside land, croplands, urban and mosaics carry no natural-vegetation signal: they
# take the climate's default (its potential natural vegetation).
NEEDLELEAF = {1, 3}
BROADLEAF = {2, 4, 5}
SHRUBS = {6, 7}
OPEN = {6, 7, 8, 9, 10}
WETLAND, SNOW_ICE, BARREN = 11, 15, 16

# Latitude bands of the lookup table; every threshold in crosswalk_biome is one of these edges.
LAT_EDGES = (25.0, 30.0, 35.0, 40.0, 50.0)
_BAND_LAT = (12.5, 27.5, 32.5, 37.5, 45.0, 70.0)  # a latitude inside each band


def crosswalk_biome(zone: str, igbp: int, abs_lat: float, coastal: bool) -> str:
    """Biome for a Koppen zone, IGBP class, absolute latitude (degrees) and coastal flag (one point)."""
    kind = zone[0]
    if zone in ("EF", "ET") or igbp == SNOW_ICE:
        # Polar climates and ice: tundra, unless at low latitude where only high mountains are this cold.
        return MONTANE if abs_lat < 35 else TUNDRA
    subarctic = kind == "D" and zone[2] in "cd"
    if igbp == WETLAND:
        if kind == "A" and coastal:
            return MANGROVES
        if kind == "D":
            return BOREAL if subarctic else TEMP_BROADLEAF
        return FLOODED
    if igbp == BARREN:
        return TUNDRA if subarctic else DESERT
    needle, broad, open_ = igbp in NEEDLELEAF, igbp in BROADLEAF, igbp in OPEN
    if kind == "B":
        if zone in ("BWh", "BWk") or igbp in SHRUBS:
            return DESERT
        if zone == "BSh":
            return TROP_DRY if (needle or broad) else TROP_GRASS
        if needle:
            return TEMP_CONIFER
        if broad:
            return TEMP_BROADLEAF
        return MONTANE if abs_lat < 25 else TEMP_GRASS  # cold steppe near the tropics = high plateaus
    if kind == "A":
        if needle:
            return TROP_CONIFER
        if zone in ("Af", "Am"):
            return TROP_GRASS if igbp in (6, 7, 9, 10) else TROP_MOIST
        if igbp == 2:
            return TROP_MOIST
        return TROP_DRY if broad else TROP_GRASS
    if kind == "C":
        if zone[1] == "s":
            return TEMP_CONIFER if needle and abs_lat >= 40 else MEDITERRANEAN
        if zone[1] == "w" and abs_lat < 35:
            if needle:
                return TROP_CONIFER
            if igbp == 2:
                return TROP_MOIST
            if broad:
                return TROP_DRY
            if zone == "Cwa":
                return TROP_GRASS if open_ else TROP_MOIST
            return MONTANE  # Cwb/Cwc: tropical highlands
        if zone[1] == "f" and abs_lat < 30:
            if needle:
                return TROP_CONIFER
            if open_:
                return TROP_GRASS if zone == "Cfa" else MONTANE
            return TROP_MOIST
        return TEMP_CONIFER if needle else TEMP_GRASS if open_ else TEMP_BROADLEAF
    if kind == "D":
        if abs_lat < 35:  # continental climates this far south: Tibet, Atlas, Zagros, Anatolian highlands
            return TEMP_CONIFER if needle else MONTANE if open_ else TEMP_BROADLEAF
        if subarctic:
            return BOREAL
        if needle:
            return BOREAL if abs_lat >= 50 else TEMP_CONIFER
        return TEMP_GRASS if open_ else TEMP_BROADLEAF
    raise ValueError(f"unknown Koppen zone {zone!r}")


@functools.cache
def _lookup_table() -> np.ndarray:
    """int8 table [zone, igbp, latitude band, coastal] -> index into BIOMES."""
    table = np.empty((len(KOPPEN_ZONES), 17, len(_BAND_LAT), 2), dtype=np.int8)
    for z, zone in enumerate(KOPPEN_ZONES):
        for g in range(17):
            for b, lat in enumerate(_BAND_LAT):
                for c in (0, 1):
                    table[z, g, b, c] = BIOMES.index(crosswalk_biome(zone, g, lat, bool(c)))
    return table


@functools.cache
def _coastal_flat() -> np.ndarray:
    return coastal_mask().ravel()


def biome_index_flat(
    lat: np.ndarray, lon: np.ndarray, continent: np.ndarray | None = None, zone: np.ndarray | None = None
) -> np.ndarray:
    """Default (crosswalk) biome index (int8) of validated 1-D points; -1 over the ocean."""
    if continent is None:
        continent = _continent_index_flat(lat, lon)
    if zone is None:
        zone = climate_index_flat(lat, lon, continent)
    cell = flat_cell(lat, lon)
    igbp = _igbp().ravel()[cell]
    band = np.searchsorted(LAT_EDGES, np.abs(lat), side="right")
    coastal = _coastal_flat()[cell].astype(np.int64)
    out = _lookup_table()[np.maximum(zone, 0), igbp, band, coastal]
    return np.where(zone < 0, -1, out).astype(np.int8)


# ----------------------------------------------------------------------------------------- user layers
_RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".asc", ".nc"}
_DEFAULT_COLUMNS = ("BIOME_NAME", "biome", "BIOME")


@dataclass(frozen=True)
class BiomeLayer:
    """A user biome layer: a vector file with a biome column, or a raster of RESOLVE biome numbers 1..14.

    ``column`` (vector only) defaults to the first of ``BIOME_NAME``, ``biome``, ``BIOME`` the file has.
    """

    path: Path
    column: str | None = None

    @property
    def is_raster(self) -> bool:
        return self.path.suffix.lower() in _RASTER_SUFFIXES


def as_biome_layer(spec: Any) -> BiomeLayer | None:
    """Accept ``None``, a ``BiomeLayer``, a path, or a mapping ``{"path": ..., "column": ...}`` (from a config)."""
    if spec is None or isinstance(spec, BiomeLayer):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return BiomeLayer(Path(spec).expanduser())
    if isinstance(spec, dict) and "path" in spec and set(spec) <= {"path", "column"}:
        return BiomeLayer(Path(spec["path"]).expanduser(), spec.get("column"))
    raise InputError(f"biome layer must be a file path or {{'path': FILE, 'column': NAME}}, got {spec!r}")


def _norm_biome(text: str) -> str:
    return re.sub(r"[^a-z/]+", " ", text.lower().replace("&", " and ")).strip()


_BIOME_BY_NORM = {_norm_biome(b): b for b in BIOMES}
_NO_BIOME = {"", "n/a", "na", "nan", "none", "null"}


def _canonical_biome(value: Any) -> str | None:
    """A layer value as a biome name: RESOLVE numbers 1..14 and name spellings map onto ``BIOMES``;
    N/A (RESOLVE's Rock and Ice, lakes) and empty values become ``None``; other names pass through."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, np.integer, float, np.floating)):
        v = float(value)
        return BIOMES[int(v) - 1] if v.is_integer() and 1 <= v <= len(BIOMES) else None
    text = str(value).strip()
    if text.lower() in _NO_BIOME:
        return None
    return _BIOME_BY_NORM.get(_norm_biome(text), text)


def _stamp(path: Path) -> tuple[str, float, int]:
    if not path.exists():
        raise InputError(
            f"biome layer {path} not found (give a vector file with a biome column, or a raster)"
        )
    st = path.stat()
    return str(path.resolve()), st.st_mtime, st.st_size


@functools.lru_cache(maxsize=4)
def _load_vector(stamp: tuple[str, float, int], column: str | None):
    import geopandas as gpd

    path = Path(stamp[0])
    try:
        frame = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - any reader failure is the user's file
        raise InputError(f"cannot read biome layer {path} as a vector file: {err}") from None
    if column is None:
        column = next((c for c in _DEFAULT_COLUMNS if c in frame.columns), None)
        if column is None:
            raise InputError(
                f"biome layer {path} has no biome column ({' / '.join(_DEFAULT_COLUMNS)}); its columns are "
                f"{[c for c in frame.columns if c != frame.geometry.name]}: name one with column=... "
                "(CLI: --biome-column)"
            )
    elif column not in frame.columns:
        raise InputError(
            f"biome layer {path} has no column {column!r}; its columns are "
            f"{[c for c in frame.columns if c != frame.geometry.name]}"
        )
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs(4326)
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty].reset_index(drop=True)
    values = np.array([_canonical_biome(v) for v in frame[column].to_numpy()] + [None], dtype=object)
    return frame, values


@functools.lru_cache(maxsize=2)
def _load_raster(stamp: tuple[str, float, int]):
    import rasterio

    path = Path(stamp[0])
    try:
        with rasterio.open(path) as src:
            band = src.read(1, masked=True)
            return band.filled(0).astype(np.int64), src.transform, src.crs
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"cannot read biome layer {path} as a raster: {err}") from None


def _biome_from_layer(lat: np.ndarray, lon: np.ndarray, layer: BiomeLayer) -> np.ndarray:
    stamp = _stamp(layer.path)
    if layer.is_raster:
        data, transform, crs = _load_raster(stamp)
        x, y = lon, lat
        if crs is not None and not crs.is_geographic:
            from rasterio.warp import transform as warp

            x, y = (np.asarray(v) for v in warp("EPSG:4326", crs, lon, lat))
        inv = ~transform
        col = inv.a * x + inv.b * y + inv.c
        row = inv.d * x + inv.e * y + inv.f
        row, col = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
        inside = (row >= 0) & (row < data.shape[0]) & (col >= 0) & (col < data.shape[1])
        value = np.zeros(lat.shape, dtype=np.int64)
        value[inside] = data[row[inside], col[inside]]
        table = np.array([None, *BIOMES], dtype=object)
        return table[np.where((value >= 1) & (value <= len(BIOMES)), value, 0)]
    frame, values = _load_vector(stamp, layer.column)
    # Overlapping polygons: the first in file order wins; no polygon (-1) reads the trailing None of ``values``.
    return values[_first_hit(frame.sindex, lon, lat)]


def biome_of(lat, lon, layer: Any = None) -> np.ndarray:
    """Biome name of each point (object array), ``None`` over the ocean (or outside a user layer's features).

    ``layer``: ``None`` for the climate x land-cover crosswalk, or a user layer (see ``as_biome_layer``).
    """
    lat_a, lon_a = coords(lat, lon)
    user = as_biome_layer(layer)
    lat_f, lon_f = lat_a.ravel(), lon_a.ravel()
    if user is not None:
        return _biome_from_layer(lat_f, lon_f, user).reshape(lat_a.shape)
    return lookup_names(biome_index_flat(lat_f, lon_f), BIOMES).reshape(lat_a.shape)
