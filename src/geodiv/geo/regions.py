"""Continents by where the land lies, and regions (continents, bounding boxes, polygon files) built on them.

A point is on a continent if it lies inside one of the continent polygons (Natural Earth 1:110m countries,
re-assigned polygon by polygon by the rules in docs/geography.md), or, outside every polygon, in a 0.05-degree
cell that MODIS classifies as land (small islands Natural Earth 1:110m leaves out, such as the Canary Islands
and Reunion), which takes the continent of the nearest polygon. Everything else is ocean (``None``, index -1).

Lookup is a raster read per point; only points in the few cells that a continent boundary crosses are refined
with an exact point-in-polygon test, so coastlines follow the polygons exactly.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geodiv.errors import InputError
from geodiv.geo._grid import CELL, OCEAN, H, W, coords, flat_cell, layer, lookup_names

CONTINENTS: tuple[str, ...] = (
    "Africa",
    "Antarctica",
    "Asia",
    "Europe",
    "North America",
    "Oceania",
    "South America",
)

_VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".parquet", ".geoparquet", ".fgb", ".kml", ".gml"}


@functools.cache
def _polygons() -> tuple[np.ndarray, np.ndarray, shapely.STRtree]:
    lay = layer("continent")
    buf, offsets = lay["wkb"].tobytes(), lay["offsets"]
    geoms = shapely.from_wkb([buf[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
    shapely.prepare(geoms)
    return geoms, lay["poly_continent"].astype(np.int8), shapely.STRtree(geoms)


def _continent_index_flat(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lay = layer("continent")
    cell = flat_cell(lat, lon)
    code = lay["code"].ravel()[cell]
    out = np.where(code == OCEAN, -1, code.astype(np.int16)).astype(np.int8)
    crossed = np.flatnonzero(lay["touch"].ravel()[cell])
    if crossed.size:
        _, poly_continent, tree = _polygons()
        # Longitude 180 and -180 are one meridian, but polygons split there touch only one of them.
        x = np.where(lon[crossed] == 180.0, -180.0, lon[crossed])
        found = _first_hit(tree, x, lat[crossed])
        again = (found < 0) & (x == -180.0)
        if again.any():
            found[again] = _first_hit(tree, np.full(int(again.sum()), 180.0), lat[crossed][again])
        hit = found >= 0
        out[crossed[hit]] = poly_continent[found[hit]]
    return out


def _first_hit(tree: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the first polygon holding each point (boundary included), -1 for none.

    ``tree`` is a ``shapely.STRtree`` or a GeoDataFrame's ``sindex`` (same ``query``); neither returns the
    polygons of a point in index order, hence the sort.
    """
    hit_pt, hit_poly = tree.query(shapely.points(x, y), predicate="intersects")
    # A point on a shared border hits two polygons: keep the lowest index, so the answer is deterministic.
    order = np.lexsort((hit_poly, hit_pt))
    hit_pt, hit_poly = hit_pt[order], hit_poly[order]
    first = np.unique(hit_pt, return_index=True)[1]
    found = np.full(x.shape, -1, dtype=np.int64)
    found[hit_pt[first]] = hit_poly[first]
    return found


def continent_index(lat, lon) -> np.ndarray:
    """Index into ``CONTINENTS`` of each point (int8), ``-1`` over the ocean. Shape follows the inputs."""
    lat_a, lon_a = coords(lat, lon)
    return _continent_index_flat(lat_a.ravel(), lon_a.ravel()).reshape(lat_a.shape)


def continent_of(lat, lon) -> np.ndarray:
    """Continent name of each point (object array), ``None`` over the ocean."""
    return lookup_names(continent_index(lat, lon), CONTINENTS)


def coastal_mask() -> np.ndarray:
    """(H, W) bool: land cells within two cells (about 10 km) of the ocean."""
    return layer("continent")["coastal"].view(bool)


# --------------------------------------------------------------------------------------------- regions
@dataclass(frozen=True, eq=False)
class Region:
    """A geographic region: all land (``global``), continents, a bounding box, or polygons.

    ``contains(lat, lon)`` is geographic containment: for continents it means "on that continent's land";
    for a box or polygons it includes the sea inside them (``sample_locations`` adds the land condition).
    """

    name: str
    continents: tuple[int, ...] | None = None
    # minlon, minlat, maxlon, maxlat; minlon > maxlon wraps across the antimeridian
    bbox: tuple[float, float, float, float] | None = None
    geometry: Any = field(default=None, repr=False)  # shapely (Multi)Polygon in EPSG:4326

    def contains(self, lat, lon) -> np.ndarray:
        lat_a, lon_a = coords(lat, lon)
        shape = lat_a.shape
        lat_f, lon_f = lat_a.ravel(), lon_a.ravel()
        inside = np.ones(lat_f.shape, dtype=bool)
        if self.continents is not None:
            wanted = np.zeros(len(CONTINENTS) + 1, dtype=bool)  # index -1 (ocean) reads the last entry
            wanted[list(self.continents)] = True
            inside &= wanted[_continent_index_flat(lat_f, lon_f)]
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            in_lon = (lon_f >= x0) & (lon_f <= x1) if x0 <= x1 else (lon_f >= x0) | (lon_f <= x1)
            inside &= in_lon & (lat_f >= y0) & (lat_f <= y1)
        if self.geometry is not None:
            idx = np.flatnonzero(inside)
            inside[idx] = shapely.intersects_xy(self.geometry, lon_f[idx], lat_f[idx])
        return inside.reshape(shape)

    def candidate_cells(self) -> np.ndarray:
        """(H, W) bool: 0.05-degree cells that may hold land of this region (a superset; ``contains`` decides)."""
        lay = layer("continent")
        code, touch = lay["code"], lay["touch"]
        if self.continents is None:
            mask = (code != OCEAN) | (touch != 0)
        else:
            bits = np.uint8(sum(1 << k for k in self.continents))
            wanted = np.zeros(256, dtype=bool)
            wanted[list(self.continents)] = True
            mask = wanted[code] | ((touch & bits) != 0)
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            lat_top = 90 - CELL * np.arange(H)
            lon_left = -180 + CELL * np.arange(W)
            rows = (lat_top - CELL <= y1) & (lat_top >= y0)
            if x0 <= x1:
                cols = (lon_left + CELL >= x0) & (lon_left <= x1)
            else:
                cols = (lon_left + CELL >= x0) | (lon_left <= x1)
            mask &= rows[:, None] & cols[None, :]
        if self.geometry is not None:
            import rasterio.features
            from affine import Affine

            touched = rasterio.features.rasterize(
                [(self.geometry, 1)],
                out_shape=(H, W),
                transform=Affine(CELL, 0.0, -180.0, 0.0, -CELL, 90.0),
                fill=0,
                all_touched=True,
                dtype="uint8",
            )
            mask &= touched.astype(bool)
        return mask


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


_BY_NORM = {_norm(c): i for i, c in enumerate(CONTINENTS)}


def _valid_names() -> str:
    return (
        ", ".join(repr(c) for c in CONTINENTS)
        + ", 'global', a list of continent names, 'bbox:minlon,minlat,maxlon,maxlat', or a polygon file"
    )


def resolve_region(spec: Region | str | os.PathLike[str] | list[str] | tuple[str, ...]) -> Region:
    """Turn a region spec into a ``Region``.

    Accepted: a continent name (case and ``_``/``-`` insensitive), several names (a list, or one string joined
    by commas or ``+``), ``"global"``, ``"bbox:minlon,minlat,maxlon,maxlat"`` (a box across the antimeridian
    has minlon > maxlon), or the path of a vector file with polygons (any format geopandas reads).
    Unknown names raise ``InputError`` listing the valid ones.
    """
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise InputError(f"empty region list; give one or more of {_valid_names()}")
        idx = sorted({_continent(s) for s in spec})
        return Region(name="+".join(CONTINENTS[i] for i in idx), continents=tuple(idx))
    if isinstance(spec, os.PathLike):
        return _polygon_region(Path(spec))
    if not isinstance(spec, str):
        raise InputError(f"region must be a name, a list of names or a path, got {type(spec).__name__}")
    text = spec.strip()
    if _norm(text) == "global":
        return Region(name="global")
    if text.lower().startswith("bbox:"):
        return _bbox_region(text)
    if _norm(text) in _BY_NORM:
        i = _BY_NORM[_norm(text)]
        return Region(name=CONTINENTS[i], continents=(i,))
    parts = [p for p in re.split(r"[,+]", text) if p.strip()]
    if len(parts) > 1 and all(_norm(p) in _BY_NORM for p in parts):
        return resolve_region(parts)
    path = Path(text).expanduser()
    if path.exists() or path.suffix.lower() in _VECTOR_SUFFIXES:
        return _polygon_region(path)
    raise InputError(f"unknown region {spec!r}; valid regions: {_valid_names()}")


def _continent(name: str) -> int:
    if not isinstance(name, str) or _norm(name) not in _BY_NORM:
        raise InputError(f"unknown continent {name!r} in region list; valid names: {', '.join(CONTINENTS)}")
    return _BY_NORM[_norm(name)]


def _bbox_region(text: str) -> Region:
    body = text.split(":", 1)[1]
    try:
        x0, y0, x1, y1 = (float(v) for v in body.split(","))
    except ValueError:
        raise InputError(
            f"bad bounding box {text!r}: expected 'bbox:minlon,minlat,maxlon,maxlat' with four numbers, "
            "e.g. 'bbox:-10,35,30,60'"
        ) from None
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 < y1 <= 90) or x0 == x1:
        raise InputError(
            f"bad bounding box {text!r}: need -180 <= minlon, maxlon <= 180 (minlon > maxlon crosses the "
            "antimeridian, minlon != maxlon) and -90 <= minlat < maxlat <= 90"
        )
    return Region(name=f"bbox:{x0:g},{y0:g},{x1:g},{y1:g}", bbox=(x0, y0, x1, y1))


def _polygon_region(path: Path) -> Region:
    import geopandas as gpd

    if not path.exists():
        raise InputError(f"region file {path} not found (give an existing vector file with polygons)")
    try:
        frame = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - any reader failure is the user's file
        raise InputError(f"cannot read region file {path} as a vector layer: {err}") from None
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs(4326)
    geoms = frame.geometry[~frame.geometry.is_empty & frame.geometry.notna()]
    polygonal = geoms[geoms.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polygonal.empty:
        raise InputError(f"region file {path} holds no polygons (found: {sorted(set(geoms.geom_type))})")
    geometry = shapely.union_all(shapely.make_valid(polygonal.to_numpy()))
    shapely.prepare(geometry)
    x0, y0, x1, y1 = geometry.bounds
    return Region(
        name=f"polygon:{path.name}",
        bbox=(max(x0, -180.0), max(y0, -90.0), min(x1, 180.0), min(y1, 90.0)),
        geometry=geometry,
    )
