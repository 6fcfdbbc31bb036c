"""PNG of what the MAE sees and predicts: inputs, masks and reconstructions in true colour (B4, B3, B2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from geodiv.atomic import atomic_path

TRUE_COLOUR: tuple[str, ...] = ("B4", "B3", "B2")


def mask_to_image(mask: torch.Tensor, groups: Sequence[Sequence[int]], n_bands: int, patch: int) -> torch.Tensor:
    """Token mask (N, G, L) or (N, G*L), 1 = removed, square grid -> per-band pixel mask (N, C, H, W)."""
    n = mask.shape[0]
    grid = math.isqrt(mask.numel() // (n * len(groups)))
    per_group = mask.reshape(n, len(groups), grid, grid)
    out = torch.zeros(n, n_bands, grid, grid, dtype=mask.dtype)
    for gi, group in enumerate(groups):
        for band in group:
            out[:, band] = per_group[:, gi]
    return out.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)


def _rgb(x: np.ndarray, idx: list[int], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    rgb = x[idx].transpose(1, 2, 0)
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)


def save_reconstruction_png(
    path: str | Path,
    imgs: torch.Tensor,
    recon: torch.Tensor,
    pixel_mask: torch.Tensor,
    bands: Sequence[str],
    title: str = "",
) -> Path:
    """Rows of samples; columns: input, masked input, reconstruction (visible pixels pasted back), prediction.

    ``imgs``, ``recon`` and ``pixel_mask`` are (N, C, H, W) with bands in ``bands`` order. Colours are stretched
    per sample between the 2nd and 98th percentile of its input, the same stretch for every column.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    idx = [list(bands).index(b) for b in TRUE_COLOUR] if set(TRUE_COLOUR) <= set(bands) else [0, 0, 0]
    x = imgs.detach().float().cpu().numpy()
    r = recon.detach().float().cpu().numpy()
    m = pixel_mask.detach().float().cpu().numpy()
    pasted = r * m + x * (1 - m)
    n = x.shape[0]
    columns = ("input", "masked", "reconstruction", "prediction")
    fig, axes = plt.subplots(n, 4, figsize=(8, 2 * n), squeeze=False)
    for i in range(n):
        lo = np.percentile(x[i][idx], 2, axis=(1, 2))
        hi = np.percentile(x[i][idx], 98, axis=(1, 2))
        masked = _rgb(x[i], idx, lo, hi) * (1 - m[i][idx].transpose(1, 2, 0)) + 0.5 * m[i][idx].transpose(1, 2, 0)
        panels = (_rgb(x[i], idx, lo, hi), masked, _rgb(pasted[i], idx, lo, hi), _rgb(r[i], idx, lo, hi))
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
    if title:
        fig.suptitle(f"{title} ({'/'.join(TRUE_COLOUR) if idx != [0, 0, 0] else bands[0]})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path
