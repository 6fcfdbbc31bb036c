"""Input normalisation: SatMAE's 8-bit scheme, z-score, or raw reflectance.

``satmae``: per band ``(x - (mean - 2 std)) / (4 std) * 255``, clipped to 0..255, cast to uint8 (truncation), then
divided by 255, with fMoW-Sentinel statistics (``geodiv.bands.SATMAE_MEAN/STD``). This is what SatMAE feeds its
model; values lie in [0, 1] on a 1/255 grid. Arithmetic is float64 as in SatMAE (float32 pixels against float64
statistics promote to float64).

``zscore``: ``(x - mean) / std`` with the dataset's own statistics (``manifest['stats']``) or given ones.

``raw``: reflectance x 10000 as float32, unchanged.

Because inputs are uint16, every scheme is a per-band function of 65,536 possible values; :class:`Normalizer`
tabulates it once (a lookup table built with the very same functions below, so results are identical) and then
normalises an image with a single gather from the flattened (bands x 65536) table, at ``value + band * 65536``
(``torch.index_select`` with int32 indices: about twice as fast as ``numpy.take``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from geodiv.bands import canonical_band, satmae_stats
from geodiv.errors import ConfigError, InputError

NormKind = Literal["satmae", "zscore", "raw"]


def _per_band(values: Sequence[float], x: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] != x.shape[0]:
        raise InputError(f"{v.shape[0]} band statistics for an array with {x.shape[0]} bands")
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def _as_numpy(x: Any) -> tuple[np.ndarray, bool]:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy(), True
    return np.asarray(x), False


def _back(y: np.ndarray, was_torch: bool) -> Any:
    return torch.from_numpy(np.ascontiguousarray(y)) if was_torch else y


def satmae_normalize(x: Any, bands: Sequence[str]) -> Any:
    """SatMAE's 8-bit normalisation of ``x`` (bands first: (C, H, W) or (C, ...)) -> float32 in [0, 1].

    ``bands`` names the bands of ``x`` in order; statistics come from ``geodiv.bands``. Accepts numpy or torch.
    """
    arr, was_torch = _as_numpy(x)
    mean, std = satmae_stats(bands)
    lo = _per_band([m - 2 * s for m, s in zip(mean, std)], arr)
    span = _per_band([4 * s for s in std], arr)
    y = (arr.astype(np.float64) - lo) / span * 255.0
    y = np.clip(y, 0, 255).astype(np.uint8)  # truncation toward zero, as SatMAE's astype(uint8)
    return _back(y.astype(np.float32) / np.float32(255.0), was_torch)


def zscore(x: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """``(x - mean) / std`` per band (bands first) -> float32; zero std bands are left centred, not divided."""
    arr, was_torch = _as_numpy(x)
    m = _per_band(mean, arr)
    s = _per_band(std, arr)
    s = np.where(s > 0, s, 1.0)
    return _back(((arr.astype(np.float64) - m) / s).astype(np.float32), was_torch)


def raw(x: Any) -> Any:
    arr, was_torch = _as_numpy(x)
    return _back(arr.astype(np.float32), was_torch)


def dataset_stats(manifest: Mapping[str, Any], bands: Sequence[str]) -> tuple[list[float], list[float]]:
    """Mean and std of the named bands from a manifest's per-band statistics."""
    stats = manifest.get("stats") or {}
    out_m, out_s = [], []
    for b in bands:
        cb = canonical_band(b)
        if cb not in stats:
            raise InputError(
                f"dataset {manifest.get('root', '')} has no statistics for band {cb}; "
                f"it has {', '.join(stats) or 'none'}"
            )
        out_m.append(float(stats[cb]["mean"]))
        out_s.append(float(stats[cb]["std"]))
    return out_m, out_s


class Normalizer:
    """Normalise uint16 (C, H, W) images of the named ``bands`` with one lookup table per band.

    ``kind='zscore'`` needs ``mean`` and ``std`` (e.g. from :func:`dataset_stats`).
    """

    def __init__(
        self,
        kind: NormKind,
        bands: Sequence[str],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.kind = kind
        self.bands = [canonical_band(b) for b in bands]
        levels = np.broadcast_to(np.arange(65536, dtype=np.uint16), (len(self.bands), 65536))
        if kind == "satmae":
            table = satmae_normalize(levels, self.bands)
        elif kind == "zscore":
            if mean is None or std is None:
                raise ConfigError("zscore normalisation needs the dataset's mean and std per band")
            table = zscore(levels, mean, std)
        elif kind == "raw":
            table = raw(levels)
        else:
            raise ConfigError(f"unknown normalisation {kind!r}; choose satmae, zscore or raw")
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        # The flattened (bands x 65536) table and each band's offset into it, as tensors: ``lookup`` gathers from
        # them here and, moved to the training device, in ``transforms.BatchCropResample``. int32 indices: half the
        # memory traffic of int64, and 65536 * bands stays far below 2**31.
        self.flat = torch.from_numpy(self.table.reshape(-1))
        self.offsets = (torch.arange(len(self.bands), dtype=torch.int32) * 65536).reshape(-1, 1, 1)

    def __call__(
        self,
        image: np.ndarray,
        band_index: Sequence[int] | None = None,
        window: tuple[int, int, int, int] | None = None,
    ) -> np.ndarray:
        """Normalised float32 (C, h, w) of uint16 ``image`` (bands first).

        ``band_index`` picks the stored bands (in this normaliser's band order) and ``window`` = (top, left,
        height, width) a crop; both are applied while normalising, without an intermediate float copy.
        """
        if image.dtype != np.uint16:
            raise InputError(f"Normalizer expects uint16 images, got {image.dtype}")
        index = range(image.shape[0]) if band_index is None else band_index
        if len(index) != len(self.bands):
            raise InputError(f"Normalizer for {len(self.bands)} bands given {len(index)}")
        if window is not None:
            top, left, h, w = window
            image = image[:, top : top + h, left : left + w]
        if list(index) != list(range(image.shape[0])):
            image = image[list(index)]  # a copy of the window only
        flat_index = np.add(image, self.offsets.numpy(), dtype=np.int32)
        return lookup(self.flat, torch.from_numpy(flat_index)).numpy()


def lookup(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``flat[index]`` for int32 ``index`` of any shape (levels plus band offsets into a flattened per-band table):
    ``index_select`` takes int32 indices on every device and gathers ~2x faster than ``numpy.take``."""
    return flat.index_select(0, index.reshape(-1)).reshape(index.shape)
