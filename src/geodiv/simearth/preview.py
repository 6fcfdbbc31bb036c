"""Write one patch as NPZ, or a PNG grid of true-colour and false-colour previews for a person to look at."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from geodiv.atomic import atomic_path
from geodiv.bands import S2_BANDS
from geodiv.errors import InputError
from geodiv.simearth.layout import SIM_CLASSES
from geodiv.simearth.world import Patch, simulate_patch, simulate_patches


def write_patch_npz(lat: float, lon: float, seed: int, out: str | os.PathLike[str], size: int = 96) -> Path:
    """One patch as NPZ: ``image`` (13, H, W) uint16, ``classes`` (H, W) uint8, ``meta`` JSON string."""
    patch = simulate_patch(lat, lon, seed, size=size)
    meta = dict(patch.meta, bands=list(S2_BANDS), class_names=list(SIM_CLASSES))
    out = Path(out)
    with atomic_path(out, suffix=".npz") as tmp:
        # np.savez appends ".npz" unless the name ends with it; the temp name does.
        np.savez_compressed(tmp, image=patch.image, classes=patch.classes, meta=np.array(json.dumps(meta)))
    return out


def rgb(image: np.ndarray, bands: tuple[str, str, str], max_reflectance: float) -> np.ndarray:
    """(H, W, 3) float in [0, 1] from three named bands, linear stretch to ``max_reflectance``, gamma 1/1.3."""
    idx = [S2_BANDS.index(b) for b in bands]
    x = image[idx].astype(np.float32).transpose(1, 2, 0) / (10000.0 * max_reflectance)
    return np.clip(x, 0, 1) ** (1 / 1.3)


def _title(p: Patch) -> str:
    m = p.meta
    return f"{m['lat']:.2f}, {m['lon']:.2f}\n{m['continent'] or 'ocean'}: {m['landcover']}"


def write_preview(region: str, n: int = 16, seed: int = 0, out: str | os.PathLike[str] = "preview.png",
                  size: int = 96) -> Path:
    """PNG grid: for ``n`` land locations sampled in ``region``, true colour (B4,B3,B2) and false colour (B8,B4,B3)."""
    if n <= 0:
        raise InputError(f"--n must be a positive number of patches, got {n}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geodiv.geo import sample_locations

    lat, lon = sample_locations(region, n, seed=seed)
    patches = list(simulate_patches(lat, lon, seed, size=size))
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.2 * 2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, p in enumerate(patches):
        r, c = divmod(k, cols)
        axes[r, 2 * c].imshow(rgb(p.image, ("B4", "B3", "B2"), 0.25), interpolation="nearest")
        axes[r, 2 * c].set_title(_title(p), fontsize=7)
        axes[r, 2 * c + 1].imshow(rgb(p.image, ("B8", "B4", "B3"), 0.5), interpolation="nearest")
        axes[r, 2 * c + 1].set_title("false colour (B8, B4, B3)", fontsize=7)
    fig.suptitle(f"SimEarth (simulated) Sentinel-2 patches, region {region}, seed {seed}: "
                 "true colour (B4, B3, B2) | false colour", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out
