import torch

from geodiv.train.visualize import mask_to_image, save_reconstruction_png


def test_mask_to_image_puts_each_group_mask_on_its_bands_and_pixels():
    groups = [[0, 2], [1]]
    mask = torch.zeros(1, 2, 4)  # 2 groups, 2 x 2 locations
    mask[0, 0, 1] = 1.0  # group 0, top-right patch
    mask[0, 1, 2] = 1.0  # group 1, bottom-left patch
    pixels = mask_to_image(mask, groups, n_bands=3, patch=3)
    assert pixels.shape == (1, 3, 6, 6)
    for band in (0, 2):
        assert pixels[0, band, :3, 3:].eq(1).all() and pixels[0, band].sum() == 9
    assert pixels[0, 1, 3:, :3].eq(1).all() and pixels[0, 1].sum() == 9
    assert torch.equal(mask_to_image(mask.reshape(1, 8), groups, 3, 3), pixels)  # flat (N, G*L) too


def test_png_is_written_for_bands_without_true_colour(tmp_path):
    imgs = torch.rand(2, 2, 8, 8)
    out = save_reconstruction_png(tmp_path / "r.png", imgs, imgs, torch.zeros_like(imgs), ["B11", "B12"])
    assert out.read_bytes()[:4] == b"\x89PNG"
