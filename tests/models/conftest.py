"""Tiny model settings shared by the model tests (32 px, patch 8: L = 16 locations, 3 groups, 48 tokens)."""

import pytest
import torch

TINY = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, channel_embed=16,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, decoder_channel_embed=8)


@pytest.fixture
def tiny() -> dict:
    """Overrides for a tiny MAE (32 px) that every model test builds."""
    return dict(TINY)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 10, 32, 32, generator=torch.Generator().manual_seed(1))
