"""IGBP land cover from MODIS MCD12C1 (2019, 0.05-degree cells): the class at a point and class fractions around it."""

from __future__ import annotations

import functools

import numpy as np

from geodiv.errors import InputError
from geodiv.geo._grid import W, cell_rc, coords, flat_cell, layer, lookup_names

# Index = IGBP code (MCD12C1 "Majority_Land_Cover_Type_1").
IGBP_CLASSES: tuple[str, ...] = (
    "Water Bodies",
    "Evergreen Needleleaf Forests",
    "Evergreen Broadleaf Forests",
    "Deciduous Needleleaf Forests",
    "Deciduous Broadleaf Forests",
    "Mixed Forests",
    "Closed Shrublands",
    "Open Shrublands",
    "Woody Savannas",
    "Savannas",
    "Grasslands",
    "Permanent Wetlands",
    "Croplands",
    "Urban and Built-up Lands",
    "Cropland/Natural Vegetation Mosaics",
    "Permanent Snow and Ice",
    "Barren",
)
WATER, SNOW_ICE = 0, 15


def _igbp() -> np.ndarray:
    return layer("landcover")["igbp"]


def landcover_of(lat, lon) -> np.ndarray:
    """IGBP code (uint8, 0 water ... 16 barren) of the 0.05-degree cell holding each point."""
    lat_a, lon_a = coords(lat, lon)
    return _igbp().ravel()[flat_cell(lat_a.ravel(), lon_a.ravel())].reshape(lat_a.shape)


def landcover_name(codes) -> np.ndarray:
    """IGBP class names for codes (object array)."""
    return lookup_names(np.asarray(codes, dtype=np.int16), IGBP_CLASSES)


def landcover_fractions(lat, lon, window: int = 7) -> np.ndarray:
    """Fraction of each IGBP class in the ``window`` x ``window`` block of cells centred on each point's cell.

    Returns float32 of shape ``(*lat.shape, 17)``; each row sums to 1 (counts / window**2). The block wraps
    across the antimeridian, and a block that reaches past a pole continues on the other side of the pole
    (the cell across the pole lies 180 degrees of longitude away), so every block holds window**2 real cells.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise InputError(f"window must be a positive odd number of cells (1, 3, 5, 7, ...), got {window!r}")
    if window > 1001:
        raise InputError(f"window {window} is too large (at most 1001 cells of 0.05 degrees)")
    lat_a, lon_a = coords(lat, lon)
    row, col = cell_rc(lat_a.ravel(), lon_a.ravel())
    padded = _padded(window)
    wp = padded.shape[1]
    flat = padded.ravel()
    offsets = [dr * wp + dc for dr in range(window) for dc in range(window)]
    # Counts are packed as bit fields into a few uint64 words per point (17 classes, each field wide
    # enough for window**2), so counting one window cell is a table lookup and an add per word.
    bits = int(window * window).bit_length()
    per_word = 64 // bits
    n_words = -(-17 // per_word)
    unit = np.zeros((n_words, 17), dtype=np.uint64)
    word_of = np.arange(17) // per_word
    shift = (bits * (np.arange(17) % per_word)).astype(np.uint64)
    unit[word_of, np.arange(17)] = np.uint64(1) << shift
    mask = np.uint64((1 << bits) - 1)
    n = row.size
    out = np.empty((n, 17), dtype=np.float32)
    chunk = 8192  # points per pass: their window rows stay in the CPU cache across the offsets
    for s in range(0, n, chunk):
        base = row[s : s + chunk] * wp + col[s : s + chunk]  # top-left cell of each window in padded grid
        acc = np.zeros((n_words, base.size), dtype=np.uint64)
        for off in offsets:
            code = flat[base + off]
            for w in range(n_words):
                acc[w] += unit[w][code]
        out[s : s + base.size] = ((acc[word_of] >> shift[:, None]) & mask).T
    out /= np.float32(window * window)
    return out.reshape(*lat_a.shape, 17)


@functools.lru_cache(maxsize=2)
def _padded(window: int) -> np.ndarray:
    """The IGBP grid padded by ``window // 2`` cells on every side.

    Padded cell (p, q) is grid cell (p - h, q - h) with h = window // 2: columns wrap around the antimeridian,
    and rows past a pole continue on the other side of the pole (the same rows in reverse order, shifted by
    180 degrees of longitude).
    """
    h = window // 2
    igbp = np.asarray(_igbp())
    top = np.roll(igbp[h - 1 :: -1], W // 2, axis=1) if h else igbp[:0]
    bottom = np.roll(igbp[::-1][:h], W // 2, axis=1)
    rows = np.concatenate([top, igbp, bottom])
    return np.ascontiguousarray(np.take(rows, np.arange(-h, W + h) % W, axis=1))
