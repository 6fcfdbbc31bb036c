"""Landscape entropy: how mixed the land cover is around a location, known before any image exists.

For a location, take the IGBP land-cover class fractions of the ``window`` x ``window`` block of 0.05-degree
MODIS cells centred on it (``geodiv.geo.landcover_fractions``; default 7 x 7 cells, about 35 km across) and
compute their Shannon entropy in bits (0 for a homogeneous block, at most log2(17) = 4.09 bits). Water is one
of the 17 classes, so a coastal window counts the sea as part of the landscape.
A dataset's landscape entropy is the mean over its samples' locations.
"""

from __future__ import annotations

import numpy as np

from geodiv.diversity.categorical import shannon_entropy
from geodiv.diversity.spectral import summarize
from geodiv.errors import InputError

#: Size in degrees of one cell of the land-cover map that the window counts.
CELL_DEG = 0.05
#: Default window: 7 x 7 cells of 0.05 degrees (about 35 km at the equator, narrower east-west at high latitude).
DEFAULT_WINDOW = 7
#: Locations processed per call into the land-cover map (bounds the (chunk, 17) fraction arrays).
_CHUNK = 65536


def landscape_entropy_from_fractions(fractions: np.ndarray) -> np.ndarray:
    """(N,) entropy in bits of class-fraction rows (N, K) (rows need not be normalised)."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 2:
        raise InputError(f"fractions must be (N, classes); got shape {fractions.shape}")
    return np.asarray(shannon_entropy(fractions, axis=-1), dtype=np.float64).reshape(-1)


def landscape_entropy(lat, lon, window: int = DEFAULT_WINDOW) -> np.ndarray:
    """(N,) landscape entropy in bits around each location (float degrees WGS84)."""
    from geodiv import geo

    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    if lat.shape != lon.shape:
        raise InputError(f"lat and lon must have the same shape; got {lat.shape} and {lon.shape}")
    if window < 1 or window % 2 == 0:
        raise InputError(f"window must be an odd number of 0.05-degree cells (e.g. 7); got {window}")
    out = np.empty(lat.size, dtype=np.float64)
    flat_lat, flat_lon = lat.ravel(), lon.ravel()
    for s in range(0, lat.size, _CHUNK):
        frac = geo.landcover_fractions(flat_lat[s : s + _CHUNK], flat_lon[s : s + _CHUNK], window=window)
        out[s : s + _CHUNK] = landscape_entropy_from_fractions(frac)
    return out.reshape(lat.shape)


def _window_info(window: int) -> dict:
    return {
        "window": window,
        "window_deg": round(window * CELL_DEG, 6),
        # 0.05 degree of latitude is 5.56 km; the window is that wide north-south everywhere.
        "window_km": round(window * CELL_DEG * 111.32, 1),
    }


def summarize_landscape(values: np.ndarray, window: int = DEFAULT_WINDOW) -> dict:
    """Mean (``landscape_entropy``), std, quantiles and histogram of per-location landscape entropies."""
    stats = summarize(values, hist_range=(0.0, float(np.log2(17))), hist_bins=34)
    return {
        "landscape_entropy": stats["mean"],
        "std": stats["std"],
        "min": stats["min"],
        "max": stats["max"],
        "quantiles": stats["quantiles"],
        "histogram": stats["histogram"],
        **_window_info(window),
    }


def landscape_summary(region, n: int = 1000, seed: int = 0, window: int = DEFAULT_WINDOW) -> dict:
    """Landscape entropy of ``n`` locations sampled in ``region`` the way the pretraining sets sample them.

    Locations come from ``geodiv.geo.sample_locations`` with its defaults (uniform by area on land, permanent
    ice and water cells excluded), as the data stage's ``global`` and ``one_hot`` strategies draw their
    candidates. ``"global"`` means what the ``global`` strategy means: the six study continents (Antarctica
    excluded), uniform by area.
    """
    from geodiv import geo
    from geodiv.data.strategies import STUDY_CONTINENTS

    if n < 1:
        raise InputError(f"--n must be at least 1; got {n}")
    if isinstance(region, str) and region.strip().lower() == "global":
        reg, name = geo.resolve_region(list(STUDY_CONTINENTS)), "global"
    else:
        reg = region if isinstance(region, geo.Region) else geo.resolve_region(region)
        name = reg.name
    lat, lon = geo.sample_locations(reg, n, seed)
    values = landscape_entropy(lat, lon, window=window)
    return {"region": name, "n": int(values.size), "seed": seed, **summarize_landscape(values, window)}


def landscape_by_continent(
    n: int = 2000, seed: int = 0, window: int = DEFAULT_WINDOW, continents: tuple[str, ...] | None = None
) -> dict[str, dict]:
    """``landscape_summary`` of every continent (Antarctica left out, as in the study), keyed by name."""
    from geodiv import geo

    names = continents or tuple(c for c in geo.CONTINENTS if c != "Antarctica")
    return {name: landscape_summary(name, n=n, seed=seed, window=window) for name in names}
