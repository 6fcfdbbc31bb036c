"""The spectral-statistics baseline: an encoder-like feature extractor with no learned weights.

It sees exactly the inputs a model sees (the task's bands mapped to the model's, normalised and resized by the
evaluation transform) and describes each image by per-band statistics: mean, standard deviation and the 5th,
25th, 50th, 75th and 95th percentiles over its pixels. The statistics are expressed in units of the band's
standard deviation around its mean under the normalisation statistics (fMoW-Sentinel's), i.e. as z-scores, so
that every feature is O(1) whatever the normalisation scheme. Feature ``c * 7 + k`` is statistic ``k`` (mean,
std, p5, p25, p50, p75, p95) of band ``c``; 10 bands give 70 features.

A task that this baseline solves as well as a pretrained encoder does not need a learned representation: it is
a function of the band statistics. The study runs it beside zero pretraining with the same heads (kNN, linear
probe; fine-tuning trains the same head on these fixed features with the same recipe and augmentation, since
there is nothing else to train), and the report calls a task *representation-sensitive* only when the best
pretrained encoder beats both (docs/evaluation.md).

For segmentation heads, ``forward_tokens`` gives the same statistics per patch of ``patch_size`` pixels (the
model's token grid).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from geodiv.bands import satmae_stats
from geodiv.evaluate.encoders import Encoder, load_encoder
from geodiv.evaluate.inputs import normalize_images

#: Name under which the baseline is evaluated (``evaluate(checkpoint="spectral")``, ``--baseline spectral``).
SPECTRAL = "spectral"
#: Percentiles of each band's pixel values, after its mean and standard deviation.
PERCENTILES: tuple[float, ...] = (5.0, 25.0, 50.0, 75.0, 95.0)
STATISTICS: tuple[str, ...] = ("mean", "std", *(f"p{p:g}" for p in PERCENTILES))
_VERSION = 1


class SpectralStats(nn.Module):
    """Per-band statistics of normalised images; ``forward_features`` (N, C*7), ``forward_tokens`` (N, 1, L, C*7).

    ``centre`` and ``scale`` (per band) map normalised values to z-scores: ``(x - centre) / scale``.
    """

    def __init__(
        self, bands: Sequence[str], img_size: int, patch_size: int, centre: Sequence[float], scale: Sequence[float],
        percentiles: Sequence[float] = PERCENTILES,
    ) -> None:
        super().__init__()
        self.bands = tuple(bands)
        self.in_chans = len(self.bands)
        self.img_size = int(img_size)
        self.patch_size = int(patch_size)
        self.register_buffer("centre", torch.tensor(list(centre), dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([s if s > 0 else 1.0 for s in scale], dtype=torch.float32))
        self.register_buffer("q", torch.tensor([p / 100.0 for p in percentiles], dtype=torch.float32))

    @property
    def embed_dim(self) -> int:
        return self.in_chans * (2 + len(self.q))

    def _stats(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C, P) values -> (..., C * (2 + Q)) statistics over the last axis."""
        z = (x.float() - self.centre[:, None]) / self.scale[:, None]
        mean = z.mean(dim=-1, keepdim=True)
        std = z.std(dim=-1, unbiased=False, keepdim=True)
        qs = _percentiles(z, self.q)  # (..., C, Q)
        return torch.cat([mean, std, qs], dim=-1).flatten(-2)

    def forward_features(self, x: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, C * 7); ``pool`` is accepted for the encoder interface and ignored."""
        return self._stats(x.flatten(2))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 1, L, C * 7): the statistics of each patch of the model's token grid."""
        from geodiv.models.satmae import patchify

        return self._stats(patchify(x, self.patch_size).transpose(1, 2)).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _percentiles(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quantiles ``q`` (in [0, 1]) over the last axis with linear interpolation (``torch.quantile``'s and numpy's
    default), from one sort: ``torch.quantile`` refuses inputs above 2^24 elements, e.g. a batch of 256 96-px
    images of 10 bands."""
    values = z.sort(dim=-1).values
    pos = q.to(values.dtype) * (values.shape[-1] - 1)
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=values.shape[-1] - 1)
    frac = pos - lo.to(values.dtype)
    return values[..., lo] * (1 - frac) + values[..., hi] * frac


def is_spectral(checkpoint: Any) -> bool:
    return isinstance(checkpoint, str) and checkpoint == SPECTRAL


def band_centre_scale(bands: Sequence[str], scheme: str) -> tuple[list[float], list[float]]:
    """Each band's mean and (mean + std) under ``scheme`` (fMoW-Sentinel statistics): centre and scale."""
    mean, std = satmae_stats(tuple(bands))
    raw = np.stack([np.asarray(mean, dtype=np.float64), np.asarray(mean) + np.asarray(std)], axis=-1)
    norm = normalize_images(raw[None, :, None, :], bands, scheme)[0, :, 0]  # (C, 2)
    return norm[:, 0].astype(float).tolist(), (norm[:, 1] - norm[:, 0]).astype(float).tolist()


def spectral_encoder(
    *, scheme: str, random_preset: str = "tiny", random_overrides: dict[str, Any] | None = None,
    random_bands: Sequence[str] | None = None,
) -> Encoder:
    """The baseline on the inputs the zero-pretraining encoder would see (its bands, input size and patch size)."""
    reference = load_encoder("random", random_preset=random_preset, random_overrides=random_overrides,
                             random_bands=random_bands, seed=0)
    return spectral_encoder_like(reference, scheme)


def spectral_encoder_like(reference: Encoder, scheme: str) -> Encoder:
    """The baseline on the inputs ``reference`` sees: its bands, input size and patch size (the token grid of
    ``forward_tokens``). Its id depends on those alone, so the statistics of one task's inputs are extracted once
    and shared by the baseline's own rows and by every encoder that appends them (``features.band_statistics``)."""
    patch = int(getattr(getattr(reference.module, "config", None), "patch_size", 8) or 8)
    centre, scale = band_centre_scale(reference.bands, scheme)
    module = SpectralStats(reference.bands, reference.img_size, patch, centre, scale)
    spec = {"v": _VERSION, "bands": list(reference.bands), "img_size": reference.img_size, "patch": patch,
            "percentiles": list(PERCENTILES), "scheme": scheme}
    cid = "spectral:" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return Encoder(module, cid, reference.bands, reference.img_size, SPECTRAL)
