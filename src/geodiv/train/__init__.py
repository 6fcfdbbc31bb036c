"""SatMAE pretraining: ``geodiv pretrain CONFIG.yaml`` on one CPU, or under ``torchrun`` on many GPUs and nodes.

``pretrain(config, resume=False)`` runs the MAE recipe (AdamW, warmup + half-cosine, gradient accumulation,
bf16/fp16 autocast, DDP) on ``geodiv.models``' MAE, streaming ``geodiv.data`` shards; see docs/training.md.
"""

from geodiv.train.config import RECIPE_PRESETS, PretrainConfig, load_pretrain_config
from geodiv.train.distributed import is_main_process
from geodiv.train.pretrain import mask_noise, newest_checkpoint, pretrain, pretrain_from_file
from geodiv.train.schedule import lr_at, scaled_lr, warmup_cosine

__all__ = [
    "PretrainConfig",
    "RECIPE_PRESETS",
    "is_main_process",
    "load_pretrain_config",
    "lr_at",
    "mask_noise",
    "newest_checkpoint",
    "pretrain",
    "pretrain_from_file",
    "scaled_lr",
    "warmup_cosine",
]
