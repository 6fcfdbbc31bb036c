"""Raster helpers shared by the task readers: GeoTIFF reading, resampling, georeference -> lat/lon."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from geodiv.errors import DataError


def resample(band: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Resample a 2-D band to ``shape`` (bilinear by default, nearest with ``order=0`` for labels).

    Used to bring 20 m / 60 m Sentinel-2 bands onto the 10 m grid (BigEarthNet, GEO-Bench), the way
    the benchmarks' own loaders do. Integer inputs are rounded back to their dtype.
    """
    if band.shape == tuple(shape):
        return band
    from scipy.ndimage import zoom

    factors = (shape[0] / band.shape[0], shape[1] / band.shape[1])
    out = zoom(band.astype(np.float32), factors, order=order, mode="nearest", grid_mode=True)
    out = out[: shape[0], : shape[1]]
    if out.shape != tuple(shape):  # zoom may round one pixel short
        out = np.pad(out, [(0, shape[0] - out.shape[0]), (0, shape[1] - out.shape[1])], mode="edge")
    if np.issubdtype(band.dtype, np.integer):
        info = np.iinfo(band.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(band.dtype)


def stack_bands(bands: list[np.ndarray], *, where: str) -> np.ndarray:
    """Stack 2-D bands of possibly different sizes onto the largest grid -> (C, H, W)."""
    if not bands:
        raise DataError(f"{where}: no image bands")
    shape = max((b.shape for b in bands), key=lambda s: s[0] * s[1])
    dtype = np.result_type(*[b.dtype for b in bands])
    out = np.empty((len(bands),) + tuple(shape), dtype=dtype)
    for i, b in enumerate(bands):
        if b.ndim != 2:
            raise DataError(f"{where}: band {i} has shape {b.shape}, expected a 2-D (H, W) raster")
        out[i] = resample(b, shape)
    return out


def centre_lat_lon(transform, crs, width: int, height: int) -> tuple[float | None, float | None]:
    """WGS84 latitude/longitude of a raster's centre, or ``(None, None)`` without a georeference."""
    if crs is None or transform is None:
        return None, None
    from rasterio.warp import transform as warp_transform

    col, row = width / 2.0, height / 2.0  # affine applied by hand: works with every affine version
    x = transform.a * col + transform.b * row + transform.c
    y = transform.d * col + transform.e * row + transform.f
    lons, lats = warp_transform(crs, "EPSG:4326", [x], [y])
    lat, lon = float(lats[0]), float(lons[0])
    if not (np.isfinite(lat) and np.isfinite(lon)):
        return None, None
    return lat, lon


def read_geotiff(path: str | os.PathLike[str], *, where: str | None = None) -> tuple[np.ndarray, float | None, float | None]:
    """All bands of a GeoTIFF as (C, H, W) in its own dtype, and the centre's lat/lon if georeferenced."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = Path(path)
    label = where or str(path)
    if not path.is_file():
        raise DataError(f"{label}: image file {path} does not exist")
    try:
        with warnings.catch_warnings(), rasterio.open(path) as src:
            # plain (non-georeferenced) images are fine here; location then comes from the manifest
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            image = src.read()
            lat, lon = centre_lat_lon(src.transform if src.crs else None, src.crs, src.width, src.height)
    except RasterioIOError as err:
        raise DataError(f"{label}: cannot read GeoTIFF {path} ({err})") from None
    return image, lat, lon
