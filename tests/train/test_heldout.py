"""The held-out reconstruction check: the mean-of-visible-patches reference and heldout.json at the end of a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodiv.models import build_mae
from geodiv.train import pretrain
from geodiv.train.heldout import heldout_losses, read_heldout

from .tiny import N_SAMPLES, TINY_MODEL, tiny_config


def _mae(norm_pix: bool):
    return build_mae("tiny", img_size=16, patch_size=4, in_chans=3, channel_groups=[[0, 1], [2]],
                     norm_pix_loss=norm_pix, seed=0, **TINY_MODEL["overrides"])


def _reference_loss(imgs: np.ndarray, mask: np.ndarray, groups, p: int) -> float:
    """Loops: each band's masked patches predicted by the mean of its visible patches' pixels."""
    n, c, h, w = imgs.shape
    g = h // p
    patches = imgs.reshape(n, c, g, p, g, p).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, g * g, p * p)
    total, count = 0.0, 0
    for i in range(n):
        for gi, bands in enumerate(groups):
            visible = mask[i, gi] == 0
            means = {b: patches[i, b, visible].mean() for b in bands}
            for loc in np.nonzero(~visible)[0]:
                total += np.mean([np.mean((patches[i, b, loc] - means[b]) ** 2) for b in bands])
                count += 1
    return total / count


def test_mean_of_visible_patches_loss_matches_a_direct_computation():
    mae = _mae(norm_pix=False)
    rng = np.random.default_rng(0)
    imgs = torch.from_numpy(rng.random((3, 3, 16, 16)).astype(np.float32))
    _, _, mask = mae(imgs, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    loss = mae.forward_loss(imgs, mae.visible_mean_prediction(imgs, mask), mask)
    expected = _reference_loss(imgs.numpy(), mask.numpy(), [[0, 1], [2]], 4)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # constant bands are predicted exactly
    flat = torch.ones(2, 3, 16, 16) * torch.tensor([0.1, 0.5, 0.9])[None, :, None, None]
    _, _, mask = mae(flat, mask_ratio=0.75, generator=torch.Generator().manual_seed(1))
    assert float(mae.forward_loss(flat, mae.visible_mean_prediction(flat, mask), mask)) == pytest.approx(0, abs=1e-10)


def test_norm_pix_reference_is_about_one():
    # Under norm_pix_loss every target patch has zero mean and unit (unbiased) variance per band: the visible
    # patches' mean is 0, and predicting 0 costs the mean square of a standardised patch, (p^2 - 1) / p^2.
    mae = _mae(norm_pix=True)
    imgs = torch.from_numpy(np.random.default_rng(1).random((4, 3, 16, 16)).astype(np.float32))
    noise = torch.rand(4, 2 * 16, generator=torch.Generator().manual_seed(0))
    res = heldout_losses(mae, imgs, noise, mask_ratio=0.75, batch_size=3)  # two batches: 3 + 1
    assert res["n"] == 4 and res["mean_visible_loss"] == pytest.approx(15 / 16, rel=1e-3)
    whole = heldout_losses(mae, imgs, noise, mask_ratio=0.75, batch_size=4)
    assert res["mae_loss"] == pytest.approx(whole["mae_loss"], rel=1e-5)
    assert res["mean_visible_loss"] == pytest.approx(whole["mean_visible_loss"], rel=1e-5)


def test_pretraining_writes_the_heldout_check(shards, tmp_path):
    log = {"visualize": False, "tensorboard": False, "every_steps": 4}
    pretrain(tiny_config(shards, tmp_path / "a", log=log, heldout={"dirs": [str(shards)], "n": 12}))
    res = read_heldout(tmp_path / "a")
    assert res["n"] == 12 and res["step"] == 8 and res["mask_ratio"] == 0.75
    assert np.isfinite(res["mae_loss"]) and res["mean_visible_loss"] > 0
    # resuming the finished run (as a study rerun does) redoes the check, with the same numbers
    (tmp_path / "a" / "heldout.json").unlink()
    pretrain(tiny_config(shards, tmp_path / "a", log=log, heldout={"dirs": [str(shards)], "n": 12}), resume=True)
    assert read_heldout(tmp_path / "a") == res
    pretrain(tiny_config(shards, tmp_path / "b", log=log, heldout={"dirs": [str(shards)], "n": N_SAMPLES * 2}))
    assert read_heldout(tmp_path / "b")["n"] == N_SAMPLES  # all there is
    pretrain(tiny_config(shards, tmp_path / "c", log=log))
    assert read_heldout(tmp_path / "c") is None  # no held-out data configured: no check
