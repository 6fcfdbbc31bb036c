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


@pytest.mark.parametrize("mode", ["train", "eval", "none"])
def test_normalize_resample_equals_normalise_then_torch_resize(mode):
    """The stream's fused kernel (crop, lookup-table normalisation, resampling, flip) against the direct way."""
    from geodiv.bands import SATMAE_BANDS
    from geodiv.data.normalize import Normalizer, satmae_normalize
    from geodiv.data.transforms import normalize_resample

    rng = np.random.default_rng(4)
    image = rng.integers(0, 6000, (10, 40, 40)).astype(np.uint16)
    image.flags.writeable = False  # as the stream hands it over: a view of the memory-mapped shard
    picked = [7, 0, 3]
    norm = Normalizer("satmae", [SATMAE_BANDS[i] for i in picked])
    aug = Augment(mode, 24 if mode != "none" else 40)
    for _ in range(12):
        p = aug.params(40, 40, rng)
        g = aug.geometry(p.height, p.width, p.flip)
        got = normalize_resample(image, np.array(picked), norm.table, (p.top, p.left, p.height, p.width), g)
        crop = torch.from_numpy(satmae_normalize(image[picked], [SATMAE_BANDS[i] for i in picked]))
        crop = crop[:, p.top : p.top + p.height, p.left : p.left + p.width]
        if mode == "none":
            np.testing.assert_array_equal(got, crop.numpy())  # identity taps: an exact copy
            continue
        if mode == "train":
            want = F.interpolate(crop[None], size=(24, 24), mode="bicubic", align_corners=False, antialias=True)[0]
            want = torch.flip(want, dims=(-1,)) if p.flip else want
        else:
            want = F.interpolate(crop[None], size=(27, 27), mode="bicubic", align_corners=False, antialias=True)[0]
            want = want[:, 2:26, 2:26]
        torch.testing.assert_close(torch.from_numpy(got), want, atol=2e-5, rtol=0)


def test_normalize_resample_checks_what_the_kernel_indexes_with():
    from geodiv.data.transforms import Geometry, normalize_resample
    from geodiv.errors import ConfigError

    image = np.zeros((2, 16, 16), np.uint16)
    table = np.zeros((2, 65536), np.float32)
    g = Geometry(8, 8, 8, 0, 8, 8, 0, 8, False)
    with pytest.raises(ConfigError, match="does not fit"):
        normalize_resample(image, np.array([0, 1]), table, (12, 0, 8, 8), g)
    assert normalize_resample(image, np.array([0, 1]), table, (8, 8, 8, 8), g).shape == (2, 8, 8)
    with pytest.raises(ConfigError, match="band indices"):
        normalize_resample(image, np.array([0, 2]), table, (0, 0, 8, 8), g)
    with pytest.raises(ConfigError, match="lookup table"):
        normalize_resample(image, np.array([0]), table, (0, 0, 8, 8), g)
    with pytest.raises(ConfigError, match="uint16"):
        normalize_resample(image.astype(np.int32), np.array([0, 1]), table, (0, 0, 8, 8), g)
