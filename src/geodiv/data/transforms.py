"""Augmentation as SatMAE trains and evaluates, without torchvision.

Train: random resized crop (area scale 0.2..1, aspect ratio 3/4..4/3, torchvision's sampling rule: 10 tries, then a
centre crop clamped to the ratio range), resized to ``size`` with bicubic interpolation, then a horizontal flip with
probability 0.5. Eval: resize the shorter side to ``int(size / 0.875)`` (109 for 96, SatMAE's crop_pct 224/256), then
a centre crop of ``size``.

Antialiasing is pinned on (``antialias=True``): torchvision changed its default between versions, and with it the
bicubic kernel torch uses (a = -0.5, as PIL, instead of -0.75), so leaving it implicit would make results depend on
library versions. Bicubic can overshoot the input range; like SatMAE we do not clamp.

Crop parameters are drawn before normalisation so that only the cropped pixels are normalised: normalisation is
per pixel, so slicing first gives exactly the same result for less work.

Resampling is separable and linear, so ``F.interpolate(x, (H, W), bicubic, antialias)`` equals
``Wy @ x @ Wx.T`` with (H, h) and (W, w) weight matrices. We obtain those matrices from ``F.interpolate`` itself
(applied to an identity, in float64, cached per size pair), so the kernel is exactly torch's. They are banded (4
taps per output pixel when upscaling, a few more when downscaling), so each axis is kept as per-output (first
tap, K weights) and applied by a small compiled kernel (numba): per band, the width pass and then the height pass,
each written as sums of whole rows so that the compiler vectorises them (one transpose in between). The stream's
kernel also crops and normalises while it gathers the band (a lookup in the normaliser's table), so a uint16
sample becomes the model input in one call with no intermediate full-size array. Flips and centre crops fold into
the taps for free. numba is imported, and the kernels compiled (or loaded from numba's on-disk cache), on first use.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from geodiv.data.normalize import Normalizer, lookup
from geodiv.errors import ConfigError

AugmentMode = Literal["train", "eval", "none"]
#: SatMAE's evaluation crop fraction (input_size / resize) = 224 / 256.
EVAL_CROP_PCT = 224 / 256
ANTIALIAS = True


@dataclass(frozen=True)
class CropParams:
    top: int
    left: int
    height: int
    width: int
    flip: bool


def random_resized_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering ``scale`` of the area with aspect ratio in ``ratio``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@functools.lru_cache(maxsize=1024)
def resize_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float32 matrix of torch's antialiased bicubic resampling along one axis."""
    if n_in == n_out:
        return torch.eye(n_in)
    # The identity's columns as channels; width 4 because antialias mis-handles a width-1 axis.
    eye = torch.eye(n_in, dtype=torch.float64).reshape(1, n_in, n_in, 1).expand(1, n_in, n_in, 4)
    out = F.interpolate(eye, size=(n_out, 4), mode="bicubic", align_corners=False, antialias=ANTIALIAS)
    return out[0, :, :, 0].T.contiguous().float()


def center_offset(n: int, size: int) -> int:
    if n < size:
        raise ConfigError(f"centre crop of {size} px from {n} px")
    return int(round((n - size) / 2.0))


@dataclass(frozen=True)
class Taps:
    """One axis of a resampling: output ``o`` is ``sum_k weight[o, k] * input[start[o] + k]``."""

    start: np.ndarray  # int64 (n_out,)
    weight: np.ndarray  # float32 (n_out, K)


@functools.lru_cache(maxsize=4096)
def axis_taps(n_in: int, n_out: int, start: int, count: int, flip: bool) -> Taps:
    """Rows ``start:start + count`` of :func:`resize_weights` (reversed when ``flip``) as banded taps."""
    dense = resize_weights(n_in, n_out)[start : start + count].numpy()
    dense = dense[::-1] if flip else dense
    nonzero = dense != 0
    first = nonzero.argmax(axis=1)
    last = n_in - 1 - nonzero[:, ::-1].argmax(axis=1)
    k = int((last - first).max()) + 1
    begin = np.minimum(first, n_in - k)  # a window of K taps that stays inside the input
    weight = np.take_along_axis(dense, begin[:, None] + np.arange(k), axis=1)
    return Taps(np.ascontiguousarray(begin, dtype=np.int64), np.ascontiguousarray(weight, dtype=np.float32))


def _kernels():
    """The compiled kernels (``geodiv.data.resample_kernels``), imported on first use: numba takes half a second
    to import, which commands that never resample should not pay."""
    from geodiv.data import resample_kernels

    return resample_kernels


@dataclass(frozen=True)
class Geometry:
    """Output rows ``row_start:row_start + out_h`` of a resize of the height axis ``h -> row_n``, and likewise
    for the width axis, columns reversed when ``flip``."""

    h: int
    w: int
    row_n: int
    row_start: int
    out_h: int
    col_n: int
    col_start: int
    out_w: int
    flip: bool

    def taps(self) -> tuple[Taps, Taps]:
        """(width taps, height taps)."""
        return (axis_taps(self.w, self.col_n, self.col_start, self.out_w, self.flip),
                axis_taps(self.h, self.row_n, self.row_start, self.out_h, False))


def eval_shape(h: int, w: int, size: int, crop_pct: float = EVAL_CROP_PCT) -> tuple[int, int]:
    """SatMAE's evaluation resize: the shorter side of an (h, w) image to ``int(size / crop_pct)``."""
    short = int(size / crop_pct)
    return (short, max(short, int(short * w / h))) if h <= w else (max(short, int(short * h / w)), short)


def eval_geometry(h: int, w: int, size: int, crop_pct: float = EVAL_CROP_PCT, flip: bool = False) -> Geometry:
    """Resize as :func:`eval_shape`, then the centre ``size`` x ``size`` crop (only the kept rows are computed)."""
    eh, ew = eval_shape(h, w, size, crop_pct)
    top, left = center_offset(eh, size), center_offset(ew, size)
    return Geometry(h, w, eh, top, size, ew, left, size, flip)


def resample(x: np.ndarray, g: Geometry) -> np.ndarray:
    """Resample float32 (P, h, w) planes to (P, out_h, out_w) as ``g`` says."""
    cols, rows = g.taps()
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], g.out_h, g.out_w), np.float32)
    _kernels().float_resample(x, cols.start, cols.weight, rows.start, rows.weight, out)
    return out


def normalize_resample(
    image: np.ndarray, bands: np.ndarray, table: np.ndarray, window: tuple[int, int, int, int], g: Geometry
) -> np.ndarray:
    """The stream's fast path: float32 (C, out_h, out_w) from a uint16 (C_stored, S, S) ``image`` in one pass.

    Band ``c`` of the output is stored band ``bands[c]``, cropped to ``window`` = (top, left, h, w), mapped through
    ``table[c]`` (a :class:`~geodiv.data.normalize.Normalizer`'s per-band lookup table) and resampled as ``g`` says.
    """
    # The kernel does no bounds checks: everything it indexes with is checked here (a few microseconds).
    if image.dtype != np.uint16 or image.ndim != 3:
        raise ConfigError(f"normalize_resample takes uint16 (C, H, W) images, got {image.dtype} {image.shape}")
    if table.dtype != np.float32 or table.shape != (len(bands), 65536):
        raise ConfigError(f"lookup table must be float32 ({len(bands)}, 65536), got {table.dtype} {table.shape}")
    if len(bands) and (int(bands.min()) < 0 or int(bands.max()) >= image.shape[0]):
        raise ConfigError(f"band indices {bands.tolist()} outside the image's {image.shape[0]} bands")
    top, left, h, w = window
    if not (0 <= top and top + h <= image.shape[1] and 0 <= left and left + w <= image.shape[2]) or (h, w) != (g.h, g.w):
        raise ConfigError(f"crop window {window} does not fit the image {image.shape[1:]} or the geometry {g}")
    cols, rows = g.taps()
    out = np.empty((len(bands), g.out_h, g.out_w), np.float32)
    _kernels().lut_crop_resample(image, bands, table, top, left, h, w, cols.start, cols.weight, rows.start, rows.weight, out)
    return out


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of (..., h, w) float tensors, antialiasing pinned on (same values as ``F.interpolate``)."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    arr = x.detach().cpu().numpy()
    lead = arr.shape[:-2]
    out = resample(arr.reshape((-1, h, w)), Geometry(h, w, size[0], 0, size[0], size[1], 0, size[1], False))
    return torch.from_numpy(out.reshape(lead + out.shape[1:]))


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = center_offset(h, size), center_offset(w, size)
    return x[..., top : top + size, left : left + size]


class Augment:
    """Crop/resize/flip to ``size`` px: ``params`` draws (before normalisation), ``apply`` resamples (after)."""

    def __init__(
        self,
        mode: AugmentMode,
        size: int,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
    ) -> None:
        if mode not in ("train", "eval", "none"):
            raise ConfigError(f"unknown augmentation mode {mode!r}; choose train, eval or none")
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ConfigError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
        self.mode, self.size, self.scale, self.ratio, self.hflip = mode, int(size), scale, ratio, hflip
        self.eval_resize = eval_shape(1, 1, self.size)[0]  # the shorter side after the eval resize (109 for 96)

    def params(self, height: int, width: int, rng: np.random.Generator) -> CropParams:
        if self.mode != "train":
            return CropParams(0, 0, height, width, False)
        top, left, h, w = random_resized_crop_box(rng, height, width, self.scale, self.ratio)
        flip = bool(rng.random() < 0.5) and self.hflip
        return CropParams(top, left, h, w, flip)

    def geometry(self, h: int, w: int, flip: bool) -> Geometry:
        """How an (h, w) crop becomes the output (identity taps where the size stays, flipped or not)."""
        if self.mode == "none":
            return Geometry(h, w, h, 0, h, w, 0, w, False)
        if self.mode == "train":
            return Geometry(h, w, self.size, 0, self.size, self.size, 0, self.size, flip)
        return eval_geometry(h, w, self.size, flip=flip)

    def apply(self, x: torch.Tensor, p: CropParams) -> torch.Tensor:
        """``x`` is the already cropped (C, h, w) float tensor."""
        if self.mode == "none":
            return x
        return torch.from_numpy(resample(x.detach().cpu().numpy(), self.geometry(*x.shape[-2:], p.flip)))

    def apply_mask(self, mask: torch.Tensor, p: CropParams) -> torch.Tensor:
        """The same geometry for an already cropped (h, w) label mask, resampled nearest (labels never blend)."""
        if self.mode == "none":
            return mask
        shape = (self.size, self.size) if self.mode == "train" else eval_shape(*mask.shape[-2:], self.size)
        out = F.interpolate(mask[None, None].float(), size=shape, mode="nearest-exact")[0, 0].to(mask.dtype)
        if self.mode == "train":
            return torch.flip(out, dims=(-1,)) if p.flip else out
        return center_crop(out, self.size).contiguous()


class BatchCropResample(torch.nn.Module):
    """The stream's per-sample path (:func:`normalize_resample`) for whole batches, on the batch's device.

    ``ShardStream(..., transform_on="device")`` yields the stored uint16 pixels of the chosen bands (as int16,
    which every torch version batches and pins) with each sample's crop ``(top, left, height, width, flip)``;
    this module turns a batch of them into the model input where the model runs. On a GPU that takes the
    per-pixel work off the DataLoader workers and halves the bytes they hand over (2 bytes per pixel instead of 4),
    which is what limited a small model's training there (issue 14, docs/scaling.md).

    Same arithmetic as the worker path: each band goes through the normaliser's lookup table, then the crop and the
    resize are the matrices ``Wy`` (out, S) and ``Wx`` (out, S) of :func:`resize_weights`, shifted to the crop's
    offset (zero outside it) and reversed for a flip, so ``out = Wy @ x @ Wx.T`` per band. Only the summation
    order differs from the banded kernel (float32 rounding, relative 1e-6). The per-length matrices are built once,
    in float64 as ``resize_weights`` builds them; a batch gathers its own.
    """

    def __init__(self, normalizer: Normalizer, augment: Augment, stored_size: int) -> None:
        super().__init__()
        s = int(stored_size)
        out = augment.geometry(s, s, False).out_h  # a whole stored image's output size (every mode)
        rows = torch.zeros(s + 1, out, s)
        for length in range(1, s + 1):
            g = augment.geometry(length, length, False)
            if g.out_h == out:  # lengths another mode never crops to (e.g. "none" below full size) stay zero
                rows[length, :, :length] = resize_weights(length, g.row_n)[g.row_start : g.row_start + out]
        self.stored_size, self.out_size = s, out
        self.register_buffer("table", normalizer.flat)
        self.register_buffer("offsets", normalizer.offsets)
        self.register_buffer("rows", rows)

    def _placed(self, start: torch.Tensor, length: torch.Tensor, flip: torch.Tensor | None) -> torch.Tensor:
        """(B, out, S): each sample's resize matrix for its crop ``start:start + length`` of the stored axis."""
        base = self.rows[length]  # (B, out, S), columns >= length are zero
        if flip is not None:
            base = torch.where(flip[:, None, None], base.flip(1), base)
        s = self.stored_size
        src = torch.arange(s, device=start.device)[None, :] - start[:, None]  # stored column i reads base column i - start
        placed = torch.gather(base, 2, src.clamp(min=0)[:, None, :].expand(-1, base.shape[1], -1))
        return placed * (src >= 0)[:, None, :]

    def forward(self, pixels: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        """Float32 (B, C, out, out) from int16 (B, C, S, S) ``pixels`` (uint16 bit patterns) and int64 (B, 5)
        ``crops`` = (top, left, height, width, flip)."""
        b, c, h, w = pixels.shape
        if (h, w) != (self.stored_size, self.stored_size) or c * 65536 != self.table.numel():
            raise ConfigError(f"BatchCropResample for {self.table.numel() // 65536} bands at {self.stored_size} px "
                              f"given pixels of shape {tuple(pixels.shape)}")
        if crops.shape != (b, 5):
            raise ConfigError(f"crops must be (batch, 5) = (top, left, height, width, flip), got {tuple(crops.shape)}")
        index = pixels.to(torch.int32)
        index &= 0xFFFF  # the uint16 levels back from their int16 bit patterns
        index += self.offsets  # each band in its own table
        x = lookup(self.table, index)
        top, left, height, width, flip = crops.unbind(1)
        wy = self._placed(top, height, None)
        wx = self._placed(left, width, flip.bool())
        return wy[:, None] @ x @ wx[:, None].transpose(-1, -2)
