"""Segmentation by per-patch heads: masks pooled to patch class fractions, patch scores upsampled to masks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


# ------------------------------------------------------------------------------------ segmentation
def patch_fractions(masks: np.ndarray, grid: int, n_classes: int) -> np.ndarray:
    """(n, H, W) masks -> (n, grid*grid, K) fraction of each patch's valid pixels in each class (area pooling).

    Pixels outside [0, K) are ignored; a patch without valid pixels gets all-zero fractions.
    """
    m = torch.from_numpy(np.asarray(masks, dtype=np.int64))
    valid = (m >= 0) & (m < n_classes)
    one_hot = F.one_hot(torch.where(valid, m, 0), n_classes).permute(0, 3, 1, 2).float()
    one_hot = one_hot * valid[:, None].float()
    pooled = F.adaptive_avg_pool2d(one_hot, grid)  # (n, K, g, g)
    total = pooled.sum(dim=1, keepdim=True)
    frac = torch.where(total > 0, pooled / total.clamp_min(1e-12), torch.zeros_like(pooled))
    return frac.permute(0, 2, 3, 1).reshape(m.shape[0], grid * grid, n_classes).numpy()


def upsample_patch_scores(scores: np.ndarray, n_images: int, out_hw: tuple[int, int]) -> np.ndarray:
    """(n*L, K) per-token scores -> (n, H, W) argmax after bilinear upsampling of the (n, K, g, g) score maps."""
    k = scores.shape[1]
    grid = int(round((scores.shape[0] / n_images) ** 0.5))
    maps = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)).reshape(n_images, grid, grid, k)
    maps = maps.permute(0, 3, 1, 2)
    up = F.interpolate(maps, size=out_hw, mode="bilinear", align_corners=False)
    return up.argmax(dim=1).numpy().astype(np.int16)
