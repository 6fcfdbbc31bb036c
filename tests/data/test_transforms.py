import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geodiv.data.transforms import Augment, random_resized_crop_box, resize


@pytest.mark.parametrize(("hw", "out"), [((37, 52), (96, 96)), ((96, 96), (109, 109)), ((96, 80), (40, 33))])
def test_resize_equals_torch_bicubic_antialiased(hw, out):
    x = torch.rand(3, *hw, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(x[None], size=out, mode="bicubic", align_corners=False, antialias=True)[0]
    torch.testing.assert_close(resize(x, out), ref, atol=2e-5, rtol=0)


def test_random_resized_crop_box_respects_scale_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = random_resized_crop_box(rng, 96, 96, (0.2, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top and top + h <= 96 and 0 <= left and left + w <= 96
        assert 0.2 * 96 * 96 * 0.9 <= h * w <= 96 * 96
        assert 3 / 4 * 0.85 <= w / h <= 4 / 3 * 1.15


def test_train_augment_is_crop_resize_flip():
    aug = Augment("train", 32)
    x = torch.rand(2, 48, 48)
    rng = np.random.default_rng(3)
    flips = 0
    for _ in range(20):
        p = aug.params(48, 48, rng)
        crop = x[:, p.top : p.top + p.height, p.left : p.left + p.width]
        y = aug.apply(crop, p)
        want = F.interpolate(crop[None], size=(32, 32), mode="bicubic", align_corners=False, antialias=True)[0]
        want = torch.flip(want, dims=(-1,)) if p.flip else want
        torch.testing.assert_close(y, want, atol=2e-5, rtol=0)
        flips += p.flip
    assert 0 < flips < 20


def test_eval_augment_resizes_to_109_then_centre_crops_96():
    aug = Augment("eval", 96)
    assert aug.eval_resize == 109
    x = torch.rand(2, 96, 96)
    p = aug.params(96, 96, np.random.default_rng(0))
    big = F.interpolate(x[None], size=(109, 109), mode="bicubic", align_corners=False, antialias=True)[0]
    torch.testing.assert_close(aug.apply(x, p), big[:, 6:102, 6:102], atol=2e-5, rtol=0)


def test_mask_follows_the_same_geometry_nearest():
    aug = Augment("train", 8, hflip=True)
    mask = torch.arange(16, dtype=torch.uint8).repeat(16, 1)  # column index
    rng = np.random.default_rng(1)
    p = aug.params(16, 16, rng)
    while not p.flip:
        p = aug.params(16, 16, rng)
    out = aug.apply_mask(mask[p.top : p.top + p.height, p.left : p.left + p.width], p)
    assert out.dtype == torch.uint8 and out.shape == (8, 8)
    assert set(out.unique().tolist()) <= set(range(p.left, p.left + p.width))
    assert (out[:, 0] >= out[:, -1]).all()  # flipped: columns decrease left to right
