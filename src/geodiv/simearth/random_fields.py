"""Random fields and the array helpers that the landscape layout and the structures share.

``smooth_field`` cuts Gaussian random fields of a given correlation scale from a precomputed bank of periodic
fields (or makes them by FFT for large patches); ``_quantile_mask`` thresholds a field at a share of its
pixels; ``_compact`` numbers small integer keys (parcels, buildings, objects) without sorting.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Correlation scales (pixels) of the precomputed field bank: log-spaced, neighbours 26 % apart.
BANK_SCALES: np.ndarray = np.geomspace(0.8, 64.0, 20)
#: Side of each periodic bank field; patches up to half of it are cut from the bank, larger ones use direct FFT.
BANK_SIDE = 256
_BANK_SEED = 20240601


def _fft_fields(rng: np.random.Generator, side_h: int, side_w: int, scales: np.ndarray) -> np.ndarray:
    """Periodic standardised Gaussian random fields (len(scales), side_h, side_w), one batched float32 FFT."""
    from scipy import fft as sfft

    noise = rng.standard_normal((len(scales), side_h, side_w), dtype=np.float32)
    ky = np.fft.fftfreq(side_h).astype(np.float32)[None, :, None]
    kx = np.fft.rfftfreq(side_w).astype(np.float32)[None, None, :]
    s = np.asarray(scales, np.float32)[:, None, None]
    # Smoothing by a Gaussian kernel of std ``s`` multiplies the spectrum by exp(-2 (pi s k)^2); the field's
    # autocorrelation is then exp(-r^2 / (4 s^2)), which falls to 1/e at lag 2 s.
    filt = np.exp(-2.0 * (np.pi * s) ** 2 * (ky * ky + kx * kx)).astype(np.float32)
    f = sfft.irfft2(sfft.rfft2(noise) * filt, s=(side_h, side_w)).astype(np.float32)
    f -= f.mean(axis=(1, 2), keepdims=True)
    f /= f.std(axis=(1, 2), keepdims=True) + 1e-6
    return f


@lru_cache(maxsize=1)
def _field_bank() -> tuple[np.ndarray, np.ndarray]:
    """(len(BANK_SCALES), BANK_SIDE, BANK_SIDE) periodic fields, built once from a fixed seed, and their
    transposes stored contiguously (2 x 5 MB), so that transposed crops read memory row by row."""
    bank = _fft_fields(np.random.default_rng(_BANK_SEED), BANK_SIDE, BANK_SIDE, BANK_SCALES)
    return bank, np.ascontiguousarray(bank.transpose(0, 2, 1))


def _bank_crop(rng: np.random.Generator, field: np.ndarray, field_t: np.ndarray, h: int, w: int) -> np.ndarray:
    """A random crop (h, w) of a bank field (a view, no copy) in a random one of the 8 square symmetries;
    ``field_t`` is ``field.T`` stored contiguously."""
    side = field.shape[0]
    if rng.random() < 0.5:
        field = field_t
    r0, c0 = rng.integers(0, side - h + 1), rng.integers(0, side - w + 1)
    crop = field[r0:r0 + h, c0:c0 + w]
    flips = rng.integers(0, 4)
    if flips & 1:
        crop = crop[::-1]
    if flips & 2:
        crop = crop[:, ::-1]
    return crop


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float, n: int = 1) -> np.ndarray:
    """``n`` Gaussian random fields (n, H, W) float32, unit variance: white noise smoothed by a Gaussian kernel of
    std ``scale_px`` pixels (autocorrelation exp(-r^2 / 4 scale^2), e-folding lag 2 x scale).

    For speed, fields are cut from a precomputed bank of periodic fields (``_field_bank``): the scale is rounded
    to the nearest bank scale (within 13 %), and each field is ``cos(a) X + sin(a) Y`` of two independent random
    crops X, Y of the bank field under random flips/transposes, which is again a Gaussian field with the same
    correlation, and never the same twice. Patches larger than half the bank side use a direct FFT of a field
    twice their size (so the periodic wrap does not show).
    """
    h, w = shape
    if max(h, w) > BANK_SIDE // 2:
        return _fft_fields(rng, 2 * h, 2 * w, np.full(n, scale_px))[:, :h, :w].copy()
    k = int(np.argmin(np.abs(np.log(BANK_SCALES / max(scale_px, 1e-3)))))
    bank, bank_t = _field_bank()
    field, field_t = bank[k], bank_t[k]
    out = np.empty((n, h, w), np.float32)
    other = np.empty((h, w), np.float32)
    for i in range(n):
        a = rng.uniform(0, 2 * np.pi)
        np.multiply(_bank_crop(rng, field, field_t, h, w), np.float32(np.cos(a)), out=out[i])
        np.multiply(_bank_crop(rng, field, field_t, h, w), np.float32(np.sin(a)), out=other)
        out[i] += other
    return out


def linear_quantile_inplace(vals: np.ndarray, q: float) -> np.floating:
    """``np.quantile(vals, q)`` (method 'linear', numpy 2.4's arithmetic, same value and dtype; an older numpy may
    differ in the last float32 digits) for a 1-D float array, by partitioning ``vals`` in place around the two order
    statistics it needs: np.quantile also partitions at the extremes and carries ~150 us of generic overhead,
    several times the work itself at patch sizes."""
    n = vals.size
    virtual = n * q + (1 + q * (1 - 1 - 1)) - 1  # numpy's virtual index for alpha = beta = 1
    if virtual >= n - 1:
        return vals.max()
    if virtual < 0:
        return vals.min()
    lo = int(np.floor(virtual))
    gamma = virtual - lo
    vals.partition([lo, lo + 1])
    a, b = vals[lo], vals[lo + 1]
    diff = b - a
    # numpy's _lerp: interpolate from the nearer end (monotone and exact at both ends).
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _quantile_mask(field: np.ndarray, share: float | np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Pixels where ``field`` is above its (1 - share) quantile (inside ``where``); ``share`` may vary per pixel."""
    if np.ndim(share) == 0:
        # A copy either way: the threshold is found by partitioning it in place.
        vals = field[where] if where is not None else field.ravel().copy()
        if vals.size == 0 or share <= 0:
            return np.zeros(field.shape, bool)
        return field >= linear_quantile_inplace(vals, 1.0 - min(float(share), 1.0))
    # Spatially varying share: compare the field's normal scores with the local share's normal quantile.
    from scipy.special import ndtri

    return field >= ndtri(1.0 - np.clip(share, 1e-4, 1 - 1e-4))


def _compact(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` for small non-negative int keys, by a presence table (no sort).

    Keys here are (local id, material) codes of one unit, at most a few thousand; for large ranges np.unique."""
    top = int(key.max())
    if top > 16 * key.size + 65536:
        return np.unique(key, return_inverse=True)
    present = np.zeros(top + 1, bool)
    present[key] = True
    uniq = np.flatnonzero(present)
    rank = np.cumsum(present, dtype=np.int64)
    rank -= 1
    return uniq, rank[key]
