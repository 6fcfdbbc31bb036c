"""Per-sample spectral entropy: how spread a sample's pixel values are, on the values the model sees.

Default (docs/diversity.md): SatMAE's 8-bit normalisation of each band (``(x - (mean - 2 std)) / (4 std) * 255``,
clipped, truncated to uint8), a 256-bin histogram per band (one bin per 8-bit level), Shannon entropy in bits,
mean over bands. The joint variant quantises each band to ``joint_bins`` levels and takes the entropy of the
distribution of the per-pixel band vectors.

Everything is batched: a chunk of samples is turned into histogram indices ``(sample, band) * bins + level``
and counted with one ``torch.bincount``; no Python loop runs per band or per histogram.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from geodiv.diversity.categorical import shannon_entropy
from geodiv.errors import InputError

#: Quantiles reported for every per-sample distribution.
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


# ------------------------------------------------------------------------------------------ levels
@lru_cache(maxsize=32)
def _satmae_lut(bands: tuple[str, ...]) -> np.ndarray:
    """(C, 65536) uint8: SatMAE's 8-bit level of every possible uint16 value of each band.

    Taken from the data stage's own SatMAE normaliser table (model input = level / 255), so the levels here are
    exactly what the model sees and the formula lives in one place.
    """
    from geodiv.data.normalize import Normalizer

    return np.rint(Normalizer("satmae", list(bands)).table.astype(np.float64) * 255.0).astype(np.uint8)


def model_levels(x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """SatMAE 8-bit levels (uint8, same shape) of raw uint16 reflectance ``x`` (..., C, H, W) with bands named."""
    x = np.asarray(x)
    if x.dtype != np.uint16:
        raise InputError(f"model_levels expects raw uint16 reflectance; got {x.dtype}")
    lut = _satmae_lut(tuple(bands))
    if x.shape[-3] != len(bands):
        raise InputError(
            f"image has {x.shape[-3]} bands but {len(bands)} band names were given ({list(bands)})"
        )
    out = np.empty(x.shape, dtype=np.uint8)
    for c in range(len(bands)):  # a table lookup per band, each vectorised over the whole batch
        np.take(lut[c], x[..., c, :, :], out=out[..., c, :, :])
    return out


def quantize(
    x: np.ndarray,
    bins: int = 256,
    *,
    bands: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Histogram bin of every value: uint8 levels, raw uint16 reflectance (needs ``bands``) or floats.

    - uint8: taken as 8-bit levels (SatMAE's model inputs x 255); ``bins`` must divide 256.
    - uint16: raw Sentinel-2 reflectance x 10000, converted to SatMAE levels with the statistics of ``bands``.
    - float: values in ``value_range`` (default [0, 1], SatMAE's model inputs); ``bins`` equal-width bins with
      the last edge inclusive, exactly as ``np.histogram(v, bins, range=value_range)``; values outside are clipped.
    Returns an integer array (uint8 for bins <= 256, else uint16) of the same shape.
    """
    if bins < 1 or bins > 65536:
        raise InputError(f"bins must be in 1..65536, got {bins}")
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    out_dtype = np.uint8 if bins <= 256 else np.uint16
    if x.dtype == np.uint16:
        if bands is None:
            raise InputError(
                "raw uint16 reflectance needs band names to be normalised as SatMAE does; pass bands=[...] "
                "(e.g. geodiv.bands.SATMAE_BANDS), or pass uint8 levels / normalised floats instead"
            )
        x = model_levels(x, bands)
    if x.dtype == np.uint8:
        if 256 % bins:
            raise InputError(f"8-bit levels need bins that divide 256 (e.g. 256, 64, 16); got {bins}")
        return x if bins == 256 else (x // (256 // bins)).astype(out_dtype)
    if np.issubdtype(x.dtype, np.integer):
        raise InputError(f"integer images must be uint8 levels or uint16 reflectance; got {x.dtype}")
    lo, hi = value_range
    if not hi > lo:
        raise InputError(f"value_range must be (low, high) with high > low; got {value_range}")
    if np.isnan(x).any():
        raise InputError("image contains NaN; fill or mask missing pixels before measuring spectral entropy")
    scaled = (x.astype(np.float64) - lo) * (bins / (hi - lo))
    return np.clip(np.floor(scaled), 0, bins - 1).astype(out_dtype)


# ----------------------------------------------------------------------------------------- entropy
def _as_batch(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise InputError(f"spectral entropy needs images (N, C, H, W) or (C, H, W); got shape {x.shape}")
    return x


def _index_dtype(n_hist: int, bins: int) -> type:
    # The smallest index dtype holding every (sample, band, level) index: bincount is memory-bound, and int16
    # indexes halve the bytes it reads compared with int32.
    if n_hist * bins <= np.iinfo(np.int16).max:
        return np.int16
    if n_hist * bins <= np.iinfo(np.int32).max:
        return np.int32
    raise InputError("too many histograms for one call; pass fewer samples at a time")


@lru_cache(maxsize=32)
def _satmae_index_lut(bands: tuple[str, ...], bins: int, dtype: type) -> np.ndarray:
    """(C, 65536): histogram index ``band * bins + bin`` of every raw uint16 value, for the fused raw path."""
    levels = _satmae_lut(bands).astype(np.int64) // (256 // bins)
    return (levels + np.arange(len(bands))[:, None] * bins).astype(dtype)


def _histogram_index(
    x: np.ndarray,
    bins: int,
    bands: Sequence[str] | None,
    value_range: tuple[float, float],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C, P) index ``(sample * C + band) * bins + bin`` of every pixel of a chunk of images (N, C, H, W).

    ``out`` (reused across chunks by the caller) avoids paying for fresh pages on every chunk.
    """
    n, c = x.shape[:2]
    shape = (n, c, x.shape[2] * x.shape[3])
    if out is None or out.shape != shape:
        out = np.empty(shape, dtype=_index_dtype(n * c, bins))
    idx = out
    dtype = idx.dtype.type
    if x.dtype == np.uint16 and bands is not None and 256 % bins == 0:
        # Raw reflectance: one table lookup maps a value straight to its (band, bin) index (no uint8 pass).
        if len(bands) != c:
            raise InputError(f"image has {c} bands but {len(bands)} band names were given ({list(bands)})")
        lut = _satmae_index_lut(tuple(bands), bins, dtype)
        for b in range(c):  # a lookup per band, each vectorised over the whole chunk
            np.take(lut[b], x[:, b].reshape(n, -1), out=idx[:, b])
        idx += (np.arange(n, dtype=dtype) * (c * bins))[:, None, None]
    else:
        levels = quantize(x, bins, bands=bands, value_range=value_range)
        offsets = (np.arange(n * c, dtype=dtype) * bins).reshape(n, c, 1)
        np.add(levels.reshape(n, c, -1), offsets, out=idx, casting="unsafe")
    return idx


def band_histograms(
    x,
    bins: int = 256,
    *,
    bands: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    index_buffer: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C, bins) int64 counts of every band of every image (N, C, H, W): one bincount over offsets."""
    x = _as_batch(x)
    n, c = x.shape[:2]
    idx = _histogram_index(x, bins, bands, value_range, out=index_buffer)
    counts = torch.bincount(torch.from_numpy(idx.reshape(-1)), minlength=n * c * bins)
    return counts.numpy().reshape(n, c, bins)


@lru_cache(maxsize=8)
def _count_log_count(total: int) -> np.ndarray:
    """``c * log2(c)`` for c = 0 .. total (0 for c = 0)."""
    c = np.arange(total + 1, dtype=np.float64)
    return c * np.log2(np.maximum(c, 1.0))


def _entropy_of_equal_totals(counts: np.ndarray, total: int) -> np.ndarray:
    """Shannon entropy (bits) along the last axis of histograms that all hold ``total`` counts.

    ``H = log2 T - sum_i c_i log2 c_i / T`` (the definition with p_i = c_i / T expanded), with the ``c log2 c``
    values looked up in a table rather than computing a logarithm per bin.
    """
    if total > (1 << 22):  # the table would be large; use the general form
        return np.asarray(shannon_entropy(counts, axis=-1))
    return np.log2(total) - _count_log_count(total)[counts].sum(axis=-1) / total


def joint_entropy(levels: np.ndarray, bins: int) -> np.ndarray:
    """(N,) entropy in bits of the per-pixel band vectors of integer ``levels`` (N, C, H, W) in [0, bins).

    Each pixel's vector is packed into one integer code (mixed radix ``bins``); a sample's code distribution
    comes from one sort and the lengths of the runs of equal codes.
    """
    n, c = levels.shape[:2]
    if float(bins) ** c >= 2.0**63:
        raise InputError(f"joint code space {bins}^{c} overflows int64; lower joint_bins")
    dtype = np.int32 if float(bins) ** c < 2.0**31 else np.int64  # int32 sorts about twice as fast
    flat = levels.reshape(n, c, -1)
    codes = np.zeros((n, flat.shape[2]), dtype=dtype)
    for band in range(c):  # Horner's scheme: code = ((l0 * bins + l1) * bins + l2) ...
        codes *= bins
        codes += flat[:, band]
    n_pix = codes.shape[1]
    codes.sort(axis=1)
    starts_mask = np.ones(codes.shape, dtype=bool)
    starts_mask[:, 1:] = codes[:, 1:] != codes[:, :-1]
    starts = np.flatnonzero(starts_mask.reshape(-1))
    run_lengths = np.diff(np.append(starts, codes.size))
    p = run_lengths / n_pix
    sample_of_run = starts // n_pix
    return np.bincount(sample_of_run, weights=-p * np.log2(p), minlength=n)


def spectral_entropy(
    x,
    bins: int = 256,
    joint: bool = False,
    *,
    bands: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    joint_bins: int = 4,
    per_band: bool = False,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Per-sample spectral entropy in bits of images (N, C, H, W) (numpy or torch; (C, H, W) counts as N=1).

    Default: ``bins``-bin histogram per band, Shannon entropy (bits), mean over bands. Inputs are read as
    described in :func:`quantize` (uint8 levels, uint16 raw reflectance with ``bands``, or floats in
    ``value_range``). ``joint=True``: entropy of the joint distribution of per-pixel band vectors, each band first
    reduced to ``joint_bins`` equal-width levels of the same range (bounded by ``log2(H*W)``).
    ``per_band=True`` returns (N, C) per-band entropies instead of their mean.
    The batch is processed ``chunk_size`` samples at a time, so memory stays flat for any N.
    """
    x = _as_batch(x)
    n, c = x.shape[:2]
    if chunk_size is None:
        # As many samples as keep every histogram index within int16 (the fastest bincount), at least one.
        chunk_size = max(1, np.iinfo(np.int16).max // (c * bins))
    if joint:
        if per_band:
            raise InputError("per_band has no meaning for the joint variant")
        if bins % joint_bins:
            raise InputError(f"joint_bins ({joint_bins}) must divide bins ({bins})")
        out = np.empty(n, dtype=np.float64)
        for s in range(0, n, chunk_size):
            levels = quantize(x[s : s + chunk_size], bins, bands=bands, value_range=value_range)
            out[s : s + chunk_size] = joint_entropy(levels // (bins // joint_bins), joint_bins)
        return out
    out = np.empty((n, c), dtype=np.float64)
    n_pix = x.shape[2] * x.shape[3]
    buffer = np.empty((min(chunk_size, n), c, n_pix), dtype=_index_dtype(min(chunk_size, n) * c, bins))
    for s in range(0, n, chunk_size):
        m = min(chunk_size, n - s)
        hist = band_histograms(
            x[s : s + m], bins, bands=bands, value_range=value_range, index_buffer=buffer[:m]
        )
        out[s : s + m] = _entropy_of_equal_totals(hist, n_pix)
    return out if per_band else out.mean(axis=1)


# ------------------------------------------------------------------------------------ distribution
def summarize(values: np.ndarray, hist_range: tuple[float, float] | None = None, hist_bins: int = 32) -> dict:
    """Mean, std, min, max, quantiles and a histogram of per-sample values (JSON-able)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": {}, "histogram": None}
    counts, edges = np.histogram(v, bins=hist_bins, range=hist_range)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "quantiles": {
            f"q{round(q * 100):02d}": float(val) for q, val in zip(QUANTILES, np.quantile(v, QUANTILES))
        },
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }
