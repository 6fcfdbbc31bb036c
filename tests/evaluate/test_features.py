import numpy as np
import pytest
import torch

from geodiv.bands import SATMAE_BANDS, satmae_stats
from geodiv.errors import InputError
from geodiv.evaluate.encoders import load_encoder, weights_id
from geodiv.evaluate.feature_cache import FeatureStore
from geodiv.evaluate.inputs import EvalTransform, plan_bands, prepare_inputs, resize_center_crop
from geodiv.evaluate.segmentation import patch_fractions
from geodiv.models.features import extract_features

from .synthetic import SyntheticTask, tiny_encoder


def test_band_plan_by_name_missing_error_and_mean_fill():
    plan = plan_bands(["B4", "B3", "B2"], ["B2", "B4"])
    assert plan.source_index == (2, 0) and not plan.filled
    with pytest.raises(InputError, match="B8"):
        plan_bands(["B2", "B3"], ["B2", "B8"])
    plan = plan_bands(["B2", "B3"], ["B2", "B8"], missing="mean")
    assert plan.filled == ["B8"] and "B8" in plan.notes()[0]
    assert plan.fill_values[1] == pytest.approx(satmae_stats(["B8"])[0][0])


def test_prepare_inputs_normalises_and_crops():
    plan = plan_bands(SATMAE_BANDS, SATMAE_BANDS)
    mean, _ = satmae_stats(SATMAE_BANDS)
    img = np.tile(np.asarray(mean, dtype=np.uint16)[:, None, None], (1, 20, 20))
    out = prepare_inputs([img, img], plan, EvalTransform(size=16))
    assert out.shape == (2, 10, 16, 16) and out.dtype == np.float32
    # The SatMAE scheme maps the mean to int(127.5) / 255.
    np.testing.assert_allclose(out, 127 / 255, atol=1e-5)
    x = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(1, 2, 32, 32)
    assert resize_center_crop(x, EvalTransform(size=16)).shape == (1, 2, 16, 16)
    assert resize_center_crop(x, EvalTransform(size=16, crop=False)).shape == (1, 2, 16, 16)


def test_features_are_cached_on_disk_and_reused(tmp_path):
    task = SyntheticTask(n=(6, 2, 3))
    enc = load_encoder(tiny_encoder())
    plan = plan_bands(task.bands, enc.bands)
    tf = EvalTransform(size=16)
    store = FeatureStore(tmp_path)
    f1 = store.features(enc, task, "train", plan, tf)
    assert f1.shape == (6, 48) and len(list(tmp_path.glob("*-train-pooled-*.npy"))) == 1
    reads = task.reads
    fresh = FeatureStore(tmp_path)  # a new process: read from disk, no image reading, no encoder call
    f2 = fresh.features(enc, task, "train", plan, tf)
    np.testing.assert_array_equal(f1, f2)
    assert fresh.table(task, "train").labels.shape == (6,) and task.reads == reads
    other = load_encoder(tiny_encoder(seed=1))
    assert not np.allclose(fresh.features(other, task, "train", plan, tf), f1)
    tokens = store.features(enc, task, "train", plan, tf, kind="tokens")
    assert tokens.shape == (6, 4, 48)


class _Readout(torch.nn.Module):
    """The wrapped encoder's weights with a readout of its tokens: their mean, or the first token only."""

    def __init__(self, encoder: torch.nn.Module, first_only: bool) -> None:
        super().__init__()
        self.encoder, self.first_only, self.bands = encoder, first_only, SATMAE_BANDS

    def extra_repr(self) -> str:
        return f"first_only={self.first_only}"

    def forward_features(self, x: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        tokens = self.encoder.forward_tokens(x).mean(dim=1)
        return tokens[:, 0] if self.first_only else tokens.mean(dim=1)


def test_cache_tells_apart_modules_with_the_same_weights_and_another_readout(tmp_path):
    task = SyntheticTask(n=(6, 2, 3))
    inner = tiny_encoder()
    mean, first = load_encoder(_Readout(inner, False)), load_encoder(_Readout(inner, True))
    assert mean.checkpoint_id != first.checkpoint_id
    plan, tf = plan_bands(task.bands, mean.bands), EvalTransform(size=16)
    store = FeatureStore(tmp_path)
    pooled = store.features(mean, task, "train", plan, tf)
    # with ids from the weights alone, the second call returned the first one's features
    assert not np.allclose(store.features(first, task, "train", plan, tf), pooled)
    assert load_encoder(_Readout(tiny_encoder(), True)).checkpoint_id == first.checkpoint_id  # deterministic


def test_random_encoder_is_seeded():
    a = load_encoder("random", random_overrides={"img_size": 16, "depth": 1}, seed=3)
    b = load_encoder("random", random_overrides={"img_size": 16, "depth": 1}, seed=3)
    c = load_encoder("random", random_overrides={"img_size": 16, "depth": 1}, seed=4)
    assert a.checkpoint_id == b.checkpoint_id != c.checkpoint_id
    assert a.bands == SATMAE_BANDS and a.img_size == 16


def test_patch_fractions_area_pooling_with_ignored_pixels():
    mask = np.zeros((1, 4, 4), dtype=np.int64)
    mask[0, :, 2:] = 1
    mask[0, 0, 0] = 255
    frac = patch_fractions(mask, 2, 2)
    assert frac.shape == (1, 4, 2)
    np.testing.assert_allclose(frac[0, 0], [1.0, 0.0])  # top-left: 3 valid pixels, all class 0
    np.testing.assert_allclose(frac[0, 1], [0.0, 1.0])


def test_extract_batches_on_a_device_and_restores_the_module():
    enc = tiny_encoder().train()
    x = np.random.default_rng(0).standard_normal((5, 10, 16, 16)).astype(np.float32)
    ref = extract_features(enc, x, batch_size=5)
    got = extract_features(enc, x, batch_size=2, device="cpu")  # other batches, explicit device: the same features
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    tokens = extract_features(enc, x, kind="tokens", device="cpu")
    assert tokens.shape[:2] == (5, 4) and tokens.dtype == np.float16
    assert enc.training and next(enc.parameters()).device.type == "cpu"
    with pytest.raises(InputError, match="unknown feature kind"):
        extract_features(enc, x, kind="pixels")


def test_a_checkpoint_is_known_by_its_weights_not_its_file(tmp_path):
    # the same weights saved by two runs (other paths in args, other optimiser state) share one id; other weights
    # or other bands get their own
    from geodiv.models import build_mae, save_checkpoint

    mae = build_mae("tiny", img_size=16, depth=1, decoder_depth=1)
    paths = []
    for run, epoch in (("a", 0), ("b", 7)):
        path = tmp_path / run / "checkpoint.pth"
        path.parent.mkdir()
        save_checkpoint(path, mae, epoch=epoch, args={"out_dir": str(path.parent), "bands": list(SATMAE_BANDS)})
        paths.append(path)
    assert paths[0].read_bytes() != paths[1].read_bytes()
    a, b = (load_encoder(str(p)) for p in paths)
    assert a.checkpoint_id == b.checkpoint_id and len(a.checkpoint_id) == 64
    with torch.no_grad():
        mae.blocks[0].mlp.fc1.bias.add_(1.0)
    save_checkpoint(tmp_path / "c.pth", mae, args={"bands": list(SATMAE_BANDS)})
    assert load_encoder(str(tmp_path / "c.pth")).checkpoint_id != a.checkpoint_id
    assert weights_id(a.module, a.bands[:-1]) != a.checkpoint_id
