"""Array helpers shared by the task readers: resampling bands onto one grid. GeoTIFFs are read, and
georeferences turned into lat/lon, by ``geodiv.data.sources.geotiff`` (``read_raster``, ``centre_lat_lon``)."""

from __future__ import annotations

import numpy as np

from geodiv.errors import DataError


def resample_band(band: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
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
        out[i] = resample_band(b, shape)
    return out
