"""Compiled kernels of ``geodiv.data.transforms``: banded separable resampling, fused with cropping and
lookup-table normalisation for the stream.

Each axis of a resampling is given as taps: output ``o`` is ``sum_k weight[o, k] * input[start[o] + k]``
(``transforms.axis_taps``). Both passes are written as sums of whole rows (``rows_pass``) so that the compiler
vectorises the inner loop; the width pass runs on the band transposed, and one transpose in between sets up the
height pass. Kept in their own module, at top level, so that numba's on-disk cache finds them again (functions
made inside a function are compiled anew in every process).
"""

from __future__ import annotations

import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)


@jit
def rows_pass(src, start, weight, dst):  # dst[o] = sum_k weight[o, k] * src[start[o] + k], whole rows
    n, taps = dst.shape[1], weight.shape[1]
    for o in range(dst.shape[0]):
        row, b = dst[o], start[o]
        k = 0
        if taps >= 4:  # upscaling's 4 taps in one sweep (summed in the same order as the loop below)
            w0, w1, w2, w3 = weight[o, 0], weight[o, 1], weight[o, 2], weight[o, 3]
            s0, s1, s2, s3 = src[b], src[b + 1], src[b + 2], src[b + 3]
            for i in range(n):
                row[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
            k = 4
        else:
            row[:] = 0.0
        while k < taps:
            wk, s = weight[o, k], src[b + k]
            for i in range(n):
                row[i] += wk * s[i]
            k += 1


@jit
def transpose_into(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[j, i] = src[i, j]


@jit
def plane(transposed, cs, cw, rs, rw, mid_t, mid, out):  # (w, h) band -> (H, W), width pass first
    rows_pass(transposed, cs, cw, mid_t)  # (W, h)
    transpose_into(mid_t, mid)  # (h, W)
    rows_pass(mid, rs, rw, out)  # (H, W)


@jit
def lut_crop_resample(image, bands, table, top, left, h, w, cs, cw, rs, rw, out):
    """out[c] = resampled ``table[c][image[bands[c], top:top+h, left:left+w]]``; the band is gathered straight
    into the transposed layout of the width pass."""
    transposed = np.empty((w, h), np.float32)
    mid_t = np.empty((cw.shape[0], h), np.float32)
    mid = np.empty((h, cw.shape[0]), np.float32)
    for c in range(bands.shape[0]):
        src = image[bands[c]]
        lut = table[c]
        for i in range(h):
            for j in range(w):
                transposed[j, i] = lut[src[top + i, left + j]]
        plane(transposed, cs, cw, rs, rw, mid_t, mid, out[c])


@jit
def float_resample(x, cs, cw, rs, rw, out):
    """out[c] = resampled float32 plane ``x[c]``."""
    h, w = x.shape[1], x.shape[2]
    transposed = np.empty((w, h), np.float32)
    mid_t = np.empty((cw.shape[0], h), np.float32)
    mid = np.empty((h, cw.shape[0]), np.float32)
    for c in range(x.shape[0]):
        transpose_into(x[c], transposed)
        plane(transposed, cs, cw, rs, rw, mid_t, mid, out[c])
