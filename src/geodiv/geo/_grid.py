"""Shared plumbing of the geography layers: coordinate checks, the 0.05-degree grid, and the committed layers.

The layers live in ``_layers/*.npz`` (written by ``scripts/derive_layers.py``, about 3 MB compressed). On
first use each is unpacked once into a cache folder as plain ``.npy`` files, which later processes
memory-map: a single ``geodiv where`` then costs milliseconds instead of a second of decompression.
The cache folder is ``$GEODIV_CACHE`` or ``$XDG_CACHE_HOME/geodiv`` (default ``~/.cache/geodiv``); if it
cannot be written, the layers are simply decompressed into memory.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from geodiv.errors import InputError

LAYER_DIR = Path(__file__).resolve().parent / "_layers"

CELL = 0.05  # degrees: the MODIS MCD12C1 climate-modelling grid
H, W = 3600, 7200  # rows (north to south), columns (west to east)
OCEAN = 255


def cache_root() -> Path:
    if os.environ.get("GEODIV_CACHE"):
        return Path(os.environ["GEODIV_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "geodiv"


@functools.cache
def layer(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``_layers/<name>.npz`` (read-only), loaded once per process."""
    path = LAYER_DIR / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate it with `python scripts/derive_layers.py`")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    unpacked = cache_root() / "geo-layers" / f"{name}-{digest}"
    try:
        names = (unpacked / "ARRAYS").read_text().split()
        return {k: np.load(unpacked / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in names}
    except OSError:
        pass  # not unpacked yet (or unreadable): decompress below
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    try:
        from geodiv.atomic import atomic_path, write_text

        for k, arr in arrays.items():
            with atomic_path(unpacked / f"{k}.npy") as tmp:
                np.save(tmp, arr)
        write_text(unpacked / "ARRAYS", " ".join(arrays))  # written last: marks the folder complete
        for stale in unpacked.parent.glob(f"{name}-*"):  # earlier versions of this layer
            if stale != unpacked:
                shutil.rmtree(stale, ignore_errors=True)
    except OSError:
        pass  # read-only home or full disk: keep working from memory
    for arr in arrays.values():
        arr.flags.writeable = False
    return arrays


def coords(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Validate and broadcast latitude/longitude (degrees WGS84) to equal-shape float64 arrays.

    Raises ``InputError`` naming the first bad element for NaN/inf, latitudes outside [-90, 90] and
    longitudes outside [-180, 180].
    """
    try:
        lat_a = np.asarray(lat, dtype=np.float64)
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a, lon_a = np.broadcast_arrays(lat_a, lon_a)
    except (TypeError, ValueError) as err:
        raise InputError(f"lat/lon must be numbers or equal-length arrays of numbers: {err}") from None
    for name, arr, limit in (("lat", lat_a, 90.0), ("lon", lon_a, 180.0)):
        bad = ~(np.abs(arr) <= limit)  # also catches NaN and inf
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), arr.shape) if arr.ndim else ()
            where = f"{name}[{', '.join(map(str, i))}]" if arr.ndim else name
            n = int(bad.sum())
            raise InputError(
                f"{where} = {float(arr[i]):g} is not a valid {'latitude' if name == 'lat' else 'longitude'} "
                f"(must be a number in [-{limit:g}, {limit:g}] degrees; {n} bad value{'s' if n > 1 else ''})"
                + (" - are lat and lon swapped?" if name == "lat" and np.all(np.abs(lon_a) <= 90) else "")
            )
    return lat_a, lon_a


def cell_rc(lat: np.ndarray, lon: np.ndarray, per_degree: float = 1 / CELL) -> tuple[np.ndarray, np.ndarray]:
    """Row/column of the grid cell holding each point (rows from 90N, columns from 180W, ``per_degree`` cells).

    Latitude -90 falls in the last row; longitude 180 wraps to column 0 (the same meridian as -180).
    """
    h, w = int(round(180 * per_degree)), int(round(360 * per_degree))
    row = np.minimum(((90.0 - lat) * per_degree).astype(np.int64), h - 1)
    col = ((lon + 180.0) * per_degree).astype(np.int64) % w
    return row, col


def flat_cell(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index of each point's 0.05-degree cell into a raveled (H, W) layer."""
    row, col = cell_rc(lat, lon)
    return row * W + col


def lookup_names(index: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Map integer indices to names in an object array; negative indices become ``None``."""
    table = np.array([*names, None], dtype=object)
    index = np.asarray(index)
    idx = np.where(index < 0, len(names), index)
    return table[idx.ravel()].reshape(index.shape)  # via ravel: a 0-d index gives a 0-d array, not a str
