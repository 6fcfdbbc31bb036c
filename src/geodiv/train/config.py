"""``PretrainConfig``: everything a pretraining run needs, validated before any work starts.

A YAML file maps onto it one to one (``geodiv pretrain CONFIG.yaml``). ``preset: paper`` fills in the published
pretrain-where settings; any field the file sets wins over the preset.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from geodiv.bands import SATMAE_BANDS, SATMAE_GROUPS, canonical_band
from geodiv.config import StrictModel, deep_merge, load_config

Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: The pretrain-where SatMAE recipe (satmae.md, "Recipes"): ViT-Base, 96 px, patch 8, mask 0.75, 50 epochs with
#: 5 warmup, blr 1e-4, effective batch 4096 (256 x accum 16 on one GPU), 10 bands (B1, B9, B10 dropped).
RECIPE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "data": {
            "bands": list(SATMAE_BANDS),
            "normalize": "satmae",
            "img_size": 96,
            "crop_scale": [0.2, 1.0],
            "augment": "train",
            "num_workers": 8,
        },
        "model": {
            "preset": "base",
            "patch_size": 8,
            "channel_groups": [list(g) for g in SATMAE_GROUPS],
            "mask_ratio": 0.75,
            "mask_mode": "independent",
            "norm_pix_loss": False,
        },
        "optim": {
            "epochs": 50,
            "warmup_epochs": 5,
            "batch_size": 256,
            "effective_batch": 4096,
            "blr": 1e-4,
            "min_lr": 0.0,
            "weight_decay": 0.05,
            "betas": [0.9, 0.95],
        },
        "checkpoint_every": 5,
    }
}


class PretrainDataSection(StrictModel):
    """Which shards to stream and how each sample becomes a model input."""

    dirs: list[Path] = Field(min_length=1, description="dataset folder(s) with manifest.json and shards")
    bands: list[str] = Field(default_factory=lambda: list(SATMAE_BANDS), min_length=1)
    normalize: Literal["satmae", "zscore", "raw"] = "satmae"
    img_size: int = Field(96, gt=0, description="training crop size in pixels (also the model's input size)")
    crop_scale: tuple[float, float] = (0.2, 1.0)
    augment: Literal["train", "eval", "none"] = Field(
        "train", description="train: random resized crop + flip; eval: resize + centre crop; none: as stored"
    )
    shuffle_buffer: int = Field(1000, ge=0)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process")
    transform_on: Literal["auto", "workers", "device"] = Field(
        "auto", description="where samples are normalised, cropped and resized: in the DataLoader workers, per "
        "sample, or on the training device, per batch (auto: device on a GPU, workers on a CPU)",
    )

    @field_validator("dirs", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, (str, os.PathLike)) else v

    @field_validator("bands")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        names = [canonical_band(b) for b in v]
        if len(set(names)) != len(names):
            raise ValueError(f"bands repeat a band: {names}")
        return names

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {v}")
        return v


class ModelSection(StrictModel):
    """The MAE: a ``geodiv.models`` preset plus SatMAE constructor overrides."""

    preset: str = "base"
    patch_size: int = Field(8, gt=0)
    channel_groups: list[list[int]] | None = Field(
        None, description="indices into data.bands; default SatMAE's groups when the bands are SatMAE's 10"
    )
    mask_ratio: float = Field(0.75, ge=0.0, lt=1.0)
    mask_mode: Literal["independent", "spatial"] = "independent"
    norm_pix_loss: bool = False
    reference_loss_order: bool = Field(
        False, description="reproduce SatMAE's band-order defect in the loss (for comparing published losses)"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="further SatMAE constructor arguments (embed_dim, depth, ...)"
    )


class OptimSection(StrictModel):
    """AdamW and the learning-rate schedule; ``batch_size`` is per process and per micro-step."""

    epochs: int = Field(50, gt=0)
    warmup_epochs: float = Field(5, ge=0)
    batch_size: int = Field(64, gt=0)
    accum_iter: int = Field(1, gt=0)
    effective_batch: int | None = Field(
        None, gt=0, description="if set, accum_iter = effective_batch / (batch_size x world size)"
    )
    blr: float = Field(1e-4, gt=0)
    lr: float | None = Field(None, gt=0, description="absolute rate; default blr x effective batch / 256")
    min_lr: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)

    @model_validator(mode="after")
    def _warmup_within(self) -> OptimSection:
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        return self


class LogSection(StrictModel):
    every_steps: int = Field(10, gt=0, description="optimiser steps between CSV/TensorBoard rows")
    tensorboard: bool = Field(True, description="also write TensorBoard events when tensorboard is installed")
    visualize: bool = Field(True, description="PNG of inputs, masks and reconstructions at each checkpoint")
    n_visualize: int = Field(4, gt=0)
    progress: bool = True


class HeldoutSection(StrictModel):
    """Held-out reconstruction check at the end of pretraining, on samples the run never trained on."""

    dirs: list[Path] = Field(
        default_factory=list, description="dataset folder(s) of held-out samples; empty: no check"
    )
    n: int = Field(256, gt=0, description="samples used: the first n, unshuffled, centre-cropped")
    batch_size: int = Field(64, gt=0)

    @field_validator("dirs", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, (str, os.PathLike)) else v


class PretrainConfig(StrictModel):
    """One pretraining run. ``out_dir`` receives checkpoints, ``log.csv``, TensorBoard events and PNGs."""

    preset: Literal["paper"] | None = None
    data: PretrainDataSection
    model: ModelSection = Field(default_factory=ModelSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    precision: Precision = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU; fp16 uses a GradScaler")
    compile: bool = False
    checkpoint_every: int = Field(5, gt=0, description="epochs between checkpoints (the last is always saved)")
    out_dir: Path
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda (the local rank's GPU) or cuda:N")
    log: LogSection = Field(default_factory=LogSection)
    heldout: HeldoutSection = Field(default_factory=HeldoutSection)
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimiser steps (smoke tests)")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            name = data["preset"]
            if name not in RECIPE_PRESETS:
                return data  # the Literal check reports the unknown name
            data = deep_merge(copy.deepcopy(RECIPE_PRESETS[name]), data)
        return data

    @model_validator(mode="after")
    def _groups_cover_bands(self) -> PretrainConfig:
        groups = self.resolved_groups()
        flat = sorted(i for g in groups for i in g)
        if flat != list(range(len(self.data.bands))):
            raise ValueError(
                f"model.channel_groups {groups} must use every index of data.bands "
                f"(0..{len(self.data.bands) - 1}: {', '.join(self.data.bands)}) exactly once"
            )
        if self.data.img_size % self.model.patch_size:
            raise ValueError(
                f"data.img_size {self.data.img_size} is not a multiple of model.patch_size {self.model.patch_size}"
            )
        return self

    def resolved_groups(self) -> list[list[int]]:
        if self.model.channel_groups is not None:
            return [list(g) for g in self.model.channel_groups]
        if list(self.data.bands) == list(SATMAE_BANDS):
            return [list(g) for g in SATMAE_GROUPS]
        raise ValueError(
            f"model.channel_groups is required for bands {self.data.bands} (SatMAE's default groups only "
            "fit its 10 bands); give groups as lists of indices into data.bands, e.g. [[0, 1, 2], [3, 4]]"
        )


def load_pretrain_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """Read a YAML file (plus dotted ``overrides``) into ``PretrainConfig``; relative paths are from the cwd."""
    return load_config(PretrainConfig, path, overrides)
