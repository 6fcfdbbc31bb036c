"""Typed evaluation config: every protocol default in one place (docs/evaluation.md says why each is what it is)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from geodiv.config import StrictModel, load_config, validate_config

#: Inverse L2 strength for logistic regression, on standardised features (one decade apart).
DEFAULT_C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: Ridge penalty on standardised features.
DEFAULT_ALPHA_GRID: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


class FeatureConfig(StrictModel):
    normalize: Literal["satmae", "zscore", "raw"] = "satmae"
    crop_pct: float = Field(0.875, gt=0, le=1)
    pool: Literal["global", "cls"] = "global"
    missing_bands: Literal["error", "mean"] = "error"
    batch_size: int = Field(64, ge=1)
    #: append the spectral baseline's band statistics (geodiv.evaluate.baseline) to every encoder's frozen features,
    #: pooled and per token, for kNN and the linear probe (fine-tuning is unchanged; the baseline's own rows too):
    #: does an encoder add to the statistics? (docs/evaluation.md, "Encoder features with band statistics")
    band_statistics: bool = False
    cache_dir: str | None = None  # default: <out folder>/feature_cache, or memory only without --out
    #: where features are extracted and kNN searches run: "cpu", "cuda", "cuda:1"; default: cuda if available
    device: str | None = None


class KnnConfig(StrictModel):
    k: list[int] = [20]
    temperature: float = Field(0.07, gt=0)
    segmentation: Literal["patch", "skip"] = "patch"


class LinearConfig(StrictModel):
    c_grid: list[float] = list(DEFAULT_C_GRID)
    alpha_grid: list[float] = list(DEFAULT_ALPHA_GRID)
    max_iter: int = Field(1000, ge=10)
    #: segmentation: fit each head on at most this many labelled patch tokens of train and of validation (drawn
    #: uniformly, seeded); None: every token. The test split is always scored on every pixel. L-BFGS time grows
    #: with the rows: one weakly regularised fit on 77k token rows x 192 features took 72 s on one core.
    max_tokens: int | None = Field(65536, ge=1)
    refit_on_train_val: bool = True
    threads: int | None = 1  # BLAS threads while fitting (None: library default)


class FinetuneConfig(StrictModel):
    epochs: int = Field(30, ge=1)
    warmup_epochs: float = Field(5, ge=0)
    batch_size: int = Field(32, ge=1)
    blr: float = Field(2e-4, gt=0)  # lr = blr * batch_size / 256
    min_lr: float = Field(1e-6, ge=0)
    layer_decay: float = Field(0.75, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0)
    drop_path: float = Field(0.1, ge=0, lt=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    mixup: float = Field(0.0, ge=0)  # Beta(alpha, alpha); 0 = off
    cutmix: float = Field(0.0, ge=0)
    rrc_scale: tuple[float, float] = (0.2, 1.0)
    hflip: bool = True
    quarter_turns: bool = False  # random 0/90/180/270-degree turns of each training image (with hflip: all 8 symmetries)
    decoder_channels: int = Field(64, ge=4)
    #: probe: the new head starts as a linear probe fitted on the frozen encoder's features of the training set
    #: (LP-FT, Kumar et al. 2022; classification and regression heads); zero: SatMAE's near-zero init (std 2e-5)
    head_init: Literal["probe", "zero"] = "probe"
    device: str | None = None  # default: cuda if available, else cpu


class ZeroPretrainingConfig(StrictModel):
    """The randomly initialised encoder for checkpoint 'random' (match the pretrained models' architecture)."""

    preset: str = "tiny"
    overrides: dict[str, Any] = {}  # build_encoder settings (img_size, in_chans, channel_groups, ...)
    bands: list[str] | None = None  # default: SatMAE's 10 bands (or all 13 when in_chans is 13)


class RegionConfig(StrictModel):
    matrix: bool = True  # with by=continent: also the train-on-region x test-on-region matrix
    #: protocols that get the matrix: fine-tuning would train one whole model per continent, so it is opt-in
    matrix_protocols: list[Literal["knn", "linear", "finetune"]] = ["knn", "linear"]


class MetricConfig(StrictModel):
    n_boot: int = Field(1000, ge=0)
    level: float = Field(0.95, gt=0, lt=1)
    multilabel_threshold: float = Field(0.5, gt=0, lt=1)


class EvalConfig(StrictModel):
    features: FeatureConfig = FeatureConfig()
    knn: KnnConfig = KnnConfig()
    linear: LinearConfig = LinearConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    random_init: ZeroPretrainingConfig = ZeroPretrainingConfig()
    regions: RegionConfig = RegionConfig()
    metrics: MetricConfig = MetricConfig()
    val_fraction: float = Field(0.1, gt=0, lt=1)  # carved from train when a task has no val split


def resolve_config(config: EvalConfig | dict | str | os.PathLike[str] | None) -> EvalConfig:
    """An ``EvalConfig`` from a model, a mapping, a YAML path, or None (all defaults)."""
    if config is None:
        return EvalConfig()
    if isinstance(config, EvalConfig):
        return config
    if isinstance(config, dict):
        return validate_config(EvalConfig, config, "<evaluation config>")
    return load_config(EvalConfig, config)
