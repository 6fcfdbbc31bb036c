"""Draw locations uniformly by area on the land of a region."""

from __future__ import annotations

import numpy as np

from geodiv.errors import InputError
from geodiv.geo._grid import CELL, W, layer
from geodiv.geo.landcover import SNOW_ICE, WATER
from geodiv.geo.regions import Region, _continent_index_flat, resolve_region

_MAX_ROUNDS = 200


def sample_locations(
    region: Region | str | list[str],
    n: int,
    seed: int | np.random.Generator,
    exclude_ice: bool = True,
    exclude_water: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (lat, lon float64 arrays) uniform by area on the land of ``region``; deterministic per seed.

    Method: pick 0.05-degree candidate cells with probability proportional to their exact area
    (sin(top) - sin(bottom)), jitter uniformly by area within the cell (uniform in longitude and in
    sin(latitude)), and keep the points that are on land in the region. ``exclude_ice`` / ``exclude_water``
    drop cells MODIS classifies as permanent snow and ice (IGBP 15) / water (IGBP 0, which also removes the
    coastal slivers of land that fall in water cells).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    reg = resolve_region(region)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if n == 0:
        return np.empty(0), np.empty(0)
    cells, cdf = _candidates(reg, exclude_ice, exclude_water)
    if cells.size == 0:
        raise InputError(
            f"region {reg.name!r} holds no land to sample"
            + (" once permanent ice and water are excluded" if exclude_ice or exclude_water else "")
        )
    lat_out, lon_out = [], []
    have, accept = 0, 1.0
    for _ in range(_MAX_ROUNDS):
        need = n - have
        m = int(min(max(need / max(accept, 0.02) * 1.1 + 64, 256), 4_000_000))
        pick = cells[np.minimum(np.searchsorted(cdf, rng.random(m) * cdf[-1], side="right"), cells.size - 1)]
        row, col = np.divmod(pick, W)
        lat, lon = _jitter(row, col, rng)
        ok = _on_land_in(reg, lat, lon)
        accept = max(ok.mean(), 1e-3)
        lat_out.append(lat[ok][:need])
        lon_out.append(lon[ok][:need])
        have += lat_out[-1].size
        if have >= n:
            return np.concatenate(lat_out), np.concatenate(lon_out)
    raise InputError(f"region {reg.name!r}: could not place {n} land points (its land is too small a share)")


def _candidates(reg: Region, exclude_ice: bool, exclude_water: bool) -> tuple[np.ndarray, np.ndarray]:
    mask = reg.candidate_cells()
    igbp = layer("landcover")["igbp"]
    # Land cover is constant within a cell, so excluding classes per cell is exact.
    if exclude_water:
        mask &= igbp != WATER
    if exclude_ice:
        mask &= igbp != SNOW_ICE
    cells = np.flatnonzero(mask)
    top = np.radians(90.0 - CELL * (cells // W))
    area = np.sin(top) - np.sin(top - np.radians(CELL))
    return cells, np.cumsum(area)


def _jitter(row: np.ndarray, col: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    u, v = rng.random(row.size), rng.random(row.size)
    lon = -180.0 + CELL * (col + u)
    top = np.radians(90.0 - CELL * row)
    s_top, s_bot = np.sin(top), np.sin(top - np.radians(CELL))
    lat = np.degrees(np.arcsin(np.clip(s_bot + v * (s_top - s_bot), -1.0, 1.0)))
    # Keep points strictly inside their cell (floating point may land them on an edge).
    lat = np.clip(lat, 90.0 - CELL * (row + 1) + 1e-9, 90.0 - CELL * row - 1e-9)
    lon = np.clip(lon, -180.0 + CELL * col + 1e-9, -180.0 + CELL * (col + 1) - 1e-9)
    return lat, lon


def _on_land_in(reg: Region, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    if reg.continents is not None and reg.bbox is None and reg.geometry is None:
        return reg.contains(lat, lon)  # on the continents' land already
    land = _continent_index_flat(lat, lon) >= 0
    if reg.bbox is None and reg.geometry is None:
        return land
    idx = np.flatnonzero(land)
    land[idx] = reg.contains(lat[idx], lon[idx])
    return land
