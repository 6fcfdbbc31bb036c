"""Held-out reconstruction check: is the MAE's reconstruction better than the trivial one?

At the end of pretraining, the model reconstructs samples it never trained on (``heldout.dirs``: the first
``heldout.n`` samples, centre-cropped, masks drawn from a fixed seed) and two numbers are stored in
``OUT_DIR/heldout.json``: its masked-patch loss (``mae_loss``, the training loss) and the loss of predicting every
masked patch as the per-sample, per-band mean of the visible patches (``mean_visible_loss``, same loss, same
target space: ``SatMAE.visible_mean_prediction``). A reconstruction that follows the input scores well below the
mean predictor; one that only learnt the image's average colour scores about the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from geodiv.atomic import write_json

HELDOUT_FILE = "heldout.json"


@torch.no_grad()
def heldout_losses(
    model: nn.Module, imgs: torch.Tensor, noise: torch.Tensor, *, mask_ratio: float, batch_size: int = 64,
) -> dict[str, float]:
    """``{n, mae_loss, mean_visible_loss}`` over ``imgs`` (N, C, H, W) with masking ``noise`` (N, n_noise).

    Every sample masks the same number of tokens, so the batch means are combined weighted by batch size.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = {"mae_loss": 0.0, "mean_visible_loss": 0.0}
    try:
        for start in range(0, len(imgs), batch_size):
            x = imgs[start : start + batch_size].to(device)
            loss, pred, mask = model(x, mask_ratio=mask_ratio, noise=noise[start : start + batch_size].to(device))
            trivial = model.forward_loss(x, model.visible_mean_prediction(x, mask), mask)
            sums["mae_loss"] += float(loss) * len(x)
            sums["mean_visible_loss"] += float(trivial) * len(x)
    finally:
        model.train(was_training)
    n = len(imgs)
    return {"n": n, **{k: v / max(n, 1) for k, v in sums.items()}}


def write_heldout(out_dir: str | Path, result: dict) -> Path:
    path = Path(out_dir) / HELDOUT_FILE
    write_json(path, result)
    return path


def read_heldout(out_dir: str | Path) -> dict | None:
    """The held-out check of a pretraining folder, or None when the run made none."""
    path = Path(out_dir) / HELDOUT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
