"""SatMAE group-channel models: the MAE that pretrains, the encoder that evaluations use, and their checkpoints.

``build_mae`` / ``build_encoder`` take a preset (tiny, small, base, large) and overrides in SatMAE's constructor
names; ``load_pretrained`` rebuilds either from a SatMAE or geodiv checkpoint. See docs/models.md.
"""

from geodiv.models.checkpoint import (
    export_safetensors,
    infer_config,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)
from geodiv.models.features import extract_features, features_from_file
from geodiv.models.presets import MODEL_SIZES, ModelConfig, resolve_model_config, validate_groups
from geodiv.models.satmae import (
    SatMAE,
    SatMAEEncoder,
    build_encoder,
    build_mae,
    param_groups,
)
from geodiv.models.tokens import patchify, unpatchify
from geodiv.models.wrapping import unwrap

__all__ = [
    "MODEL_SIZES",
    "ModelConfig",
    "SatMAE",
    "SatMAEEncoder",
    "build_encoder",
    "build_mae",
    "export_safetensors",
    "extract_features",
    "features_from_file",
    "infer_config",
    "load_checkpoint",
    "load_pretrained",
    "param_groups",
    "patchify",
    "resolve_model_config",
    "save_checkpoint",
    "unpatchify",
    "unwrap",
    "validate_groups",
]
