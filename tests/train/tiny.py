"""Tiny real shards and a tiny MAE config for the pretraining tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geodiv.bands import S2_BANDS
from geodiv.train.config import PretrainConfig

N_SAMPLES = 32
SHARD_SIZE = 4
SIZE = 16

#: The tiny preset shrunk further: 12 tokens (2 x 2 locations x 3 groups), one block each side.
TINY_MODEL = {
    "preset": "tiny",
    "patch_size": 8,
    "overrides": {
        "embed_dim": 32, "depth": 1, "num_heads": 2, "channel_embed": 8,
        "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2, "decoder_channel_embed": 4,
    },
}


def make_samples(n: int, size: int, seed: int):
    """Smooth random 13-band reflectance fields (a coarse field upsampled, plus noise), like small S2 patches."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = rng.uniform(300, 4000, size=(len(S2_BANDS), 4, 4))
        field = np.kron(coarse, np.ones((size // 4, size // 4)))
        image = np.clip(field + rng.normal(0, 150, field.shape), 0, 65535).astype(np.uint16)
        yield f"s{i:04d}", image, {"lat": float(rng.uniform(-60, 70)), "lon": float(rng.uniform(-180, 180))}


def tiny_config(shards: Path, out: Path, **fields) -> PretrainConfig:
    """2 epochs of 4 steps (batch 4 x accum 2 = 8 of 32 samples), logging and checkpointing every epoch."""
    data = {"dirs": [str(shards)], "img_size": SIZE, "shuffle_buffer": 8, **fields.pop("data", {})}
    optim = {"epochs": 2, "warmup_epochs": 1, "batch_size": 4, "accum_iter": 2, "blr": 1e-2,
             **fields.pop("optim", {})}
    model = {**TINY_MODEL, **fields.pop("model", {})}
    log = {"every_steps": 1, "tensorboard": False, **fields.pop("log", {})}
    base = {"data": data, "model": model, "optim": optim, "log": log, "out_dir": str(out), "device": "cpu",
            "checkpoint_every": 1, "seed": 0}
    return PretrainConfig.model_validate({**base, **fields})
