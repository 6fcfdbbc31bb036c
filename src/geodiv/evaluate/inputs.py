"""Evaluation inputs: a task's bands mapped onto the encoder's (by name), normalised and resized.

Images are mapped to the encoder's bands (:func:`plan_bands`), normalised (``geodiv.data.normalize``; SatMAE's
8-bit scheme by default) and passed through the evaluation transform (bicubic resize so that a centre crop of the
model's input size keeps ``crop_pct`` of the image, then that crop; segmentation resizes to the input size without
cropping so that every labelled pixel stays in view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from geodiv.bands import canonical_band, satmae_stats
from geodiv.data import normalize
from geodiv.data.transforms import eval_geometry, resample, resize
from geodiv.errors import InputError


# ------------------------------------------------------------------------------------------- bands
@dataclass(frozen=True)
class BandPlan:
    """How to build the encoder's input channels from a task's bands: index into the task, or None = fill."""

    model_bands: tuple[str, ...]
    source_index: tuple[int | None, ...]
    fill_values: tuple[float, ...]  # raw (reflectance x 10000) value used for a missing band

    @property
    def filled(self) -> list[str]:
        return [b for b, i in zip(self.model_bands, self.source_index) if i is None]

    def notes(self) -> list[str]:
        if not self.filled:
            return []
        return [f"bands {', '.join(self.filled)} missing from the task: filled with the SatMAE (fMoW-Sentinel) mean"]


def plan_bands(
    task_bands: Sequence[str], model_bands: Sequence[str], *, missing: str = "error", where: str = "task"
) -> BandPlan:
    """Map the model's bands onto the task's, by name; missing bands are an error or mean-filled."""
    canon_task = [canonical_band(b) for b in task_bands]
    model = tuple(canonical_band(b) for b in model_bands)
    index: list[int | None] = [canon_task.index(b) if b in canon_task else None for b in model]
    absent = [b for b, i in zip(model, index) if i is None]
    if absent and missing != "mean":
        raise InputError(
            f"{where} lacks band(s) {', '.join(absent)} that the checkpoint was trained on; the task has "
            f"{', '.join(canon_task)}. Evaluate a checkpoint trained on the task's bands, or set "
            "features.missing_bands: mean in the evaluation config to fill them with the band's mean "
            "(the results then say so)."
        )
    means, _ = satmae_stats(model)
    fill = tuple(float(means[j]) if i is None else 0.0 for j, i in enumerate(index))
    return BandPlan(model, tuple(index), fill)


def select_bands(image: np.ndarray, plan: BandPlan) -> np.ndarray:
    """(C_task, H, W) -> (C_model, H, W) following ``plan``, keeping uint16 data uint16 (fills rounded)."""
    dtype = np.uint16 if image.dtype == np.uint16 else np.float32
    if dtype == np.uint16 and all(i is not None for i in plan.source_index):
        return image[list(plan.source_index)]
    out = np.empty((len(plan.source_index),) + image.shape[1:], dtype=dtype)
    for j, i in enumerate(plan.source_index):
        out[j] = image[i] if i is not None else (round(plan.fill_values[j]) if dtype == np.uint16
                                                 else plan.fill_values[j])
    return out


# --------------------------------------------------------------------------------------- transform
@dataclass(frozen=True)
class EvalTransform:
    """Normalisation scheme and geometry of the evaluation inputs (part of every cache key)."""

    scheme: str = "satmae"
    size: int = 96
    crop_pct: float = 0.875
    crop: bool = True  # False for segmentation (resize only)

    def key(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "size": self.size, "crop_pct": self.crop_pct, "crop": self.crop}


_NORMALIZERS: dict[tuple[str, tuple[str, ...]], Any] = {}


def normalize_images(x: np.ndarray, bands: Sequence[str], scheme: str) -> np.ndarray:
    """Normalise raw (N, C, H, W) images with ``geodiv.data.normalize`` -> float32.

    ``satmae``: SatMAE's 8-bit scheme; ``zscore``: (x - mean) / std with the same fMoW-Sentinel statistics
    (a downstream task has no pretraining-set statistics of its own); ``raw``: unchanged. uint16 images go
    through the lookup-table ``Normalizer`` (one gather per band), other dtypes through the formula.
    """
    if scheme not in ("satmae", "zscore", "raw"):
        raise InputError(f"unknown normalisation scheme {scheme!r}; use satmae, zscore or raw")
    bands = tuple(bands)
    mean, std = satmae_stats(bands)
    if x.dtype == np.uint16:
        key = (scheme, bands)
        if key not in _NORMALIZERS:
            _NORMALIZERS[key] = normalize.Normalizer(scheme, bands, mean=mean, std=std)
        norm = _NORMALIZERS[key]
        return np.stack([norm(im) for im in x]) if len(x) else x.astype(np.float32)
    bands_first = np.moveaxis(x, 1, 0)  # the normalisers take bands first
    if scheme == "satmae":
        out = normalize.satmae_normalize(bands_first, bands)
    elif scheme == "zscore":
        out = normalize.zscore(bands_first, mean, std)
    else:
        out = normalize.raw(bands_first)
    return np.ascontiguousarray(np.moveaxis(np.asarray(out, dtype=np.float32), 0, 1))


def resize_center_crop(x: torch.Tensor, transform: EvalTransform) -> torch.Tensor:
    """SatMAE's evaluation geometry with ``geodiv.data.transforms`` (bicubic, antialias pinned): resize the shorter
    side to ``int(size / crop_pct)`` and centre-crop ``size``; with ``crop=False`` resize to ``size`` x ``size``."""
    size = transform.size
    if not transform.crop:
        return resize(x, (size, size))
    h, w = x.shape[-2:]
    arr = x.detach().cpu().numpy()
    out = resample(arr.reshape((-1, h, w)), eval_geometry(h, w, size, transform.crop_pct))
    return torch.from_numpy(out.reshape(arr.shape[:-2] + (size, size)))


def prepare_inputs(
    images: Sequence[np.ndarray], plan: BandPlan, transform: EvalTransform, batch_size: int = 256
) -> np.ndarray:
    """Raw task images (each (C_task, H, W), sizes may differ) -> float32 (N, C_model, S, S) model inputs."""
    out = np.empty((len(images), len(plan.model_bands), transform.size, transform.size), dtype=np.float32)
    start = 0
    while start < len(images):
        # Batch consecutive images of the same shape (usually the whole split).
        shape = images[start].shape[1:]
        stop = start + 1
        while stop < len(images) and stop - start < batch_size and images[stop].shape[1:] == shape:
            stop += 1
        raw = np.stack([select_bands(im, plan) for im in images[start:stop]])
        norm = normalize_images(raw, plan.model_bands, transform.scheme)
        out[start:stop] = resize_center_crop(torch.from_numpy(norm), transform).numpy()
        start = stop
    return out
