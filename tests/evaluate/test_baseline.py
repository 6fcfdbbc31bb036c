import json

import numpy as np
import pytest
import torch

from geodiv.evaluate import evaluate
from geodiv.evaluate.baseline import PERCENTILES, SpectralStats, band_centre_scale, spectral_encoder

from .synthetic import SyntheticTask


def _numpy_stats(values: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(C, P) pixel values -> the baseline's C * 7 features, computed independently with numpy."""
    z = (values - centre[:, None]) / scale[:, None]
    cols = [z.mean(1), z.std(1)] + [np.percentile(z, p, axis=1) for p in PERCENTILES]
    return np.stack(cols, axis=1).ravel()


def test_features_are_per_band_statistics_in_z_units():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 8, 8)).astype(np.float32)
    centre, scale = np.array([0.5, 0.2, 0.0]), np.array([0.25, 0.5, 2.0])
    module = SpectralStats(("B2", "B3", "B4"), 8, 4, centre, scale)
    assert module.embed_dim == 3 * 7
    feats = module.forward_features(torch.from_numpy(x)).numpy()
    for i in range(2):
        np.testing.assert_allclose(feats[i], _numpy_stats(x[i].reshape(3, -1), centre, scale), rtol=1e-5, atol=1e-5)
    tokens = module.forward_tokens(torch.from_numpy(x)).numpy()
    assert tokens.shape == (2, 1, 4, 21)  # 2 x 2 patches of 4 px
    top_right = x[1, :, :4, 4:].reshape(3, -1)  # patch 1 in row-major order
    np.testing.assert_allclose(tokens[1, 0, 1], _numpy_stats(top_right, centre, scale), rtol=1e-5, atol=1e-5)


def test_large_batches_are_fine():
    # torch.quantile refuses more than 2^24 elements; a batch of 256 images of 10 bands at 96 px has 23.6M.
    x = torch.rand(256, 10, 96, 96)
    module = SpectralStats(tuple("B2 B3 B4 B5 B6 B7 B8 B8A B11 B12".split()), 96, 8, [0.0] * 10, [1.0] * 10)
    feats = module.forward_features(x)
    np.testing.assert_allclose(feats[-1, 2:7].numpy(), np.percentile(x[-1, 0].numpy(), PERCENTILES), atol=1e-6)


def test_centre_and_scale_follow_the_normalisation():
    bands = ("B2", "B3", "B4")
    centre, scale = band_centre_scale(bands, "zscore")
    np.testing.assert_allclose(centre, 0.0, atol=1e-6)
    np.testing.assert_allclose(scale, 1.0, rtol=1e-6)
    centre, scale = band_centre_scale(bands, "satmae")  # mean -> 127/255, one std = 64 levels of 255
    np.testing.assert_allclose(centre, 127 / 255, rtol=1e-6)
    np.testing.assert_allclose(scale, 64 / 255, rtol=1e-6)


def test_encoder_follows_the_zero_pretraining_inputs():
    enc = spectral_encoder(scheme="satmae", random_overrides={"img_size": 16, "patch_size": 4})
    assert enc.img_size == 16 and enc.module.patch_size == 4 and len(enc.bands) == 10
    assert enc.checkpoint_id.startswith("spectral:") and enc.source == "spectral"
    again = spectral_encoder(scheme="satmae", random_overrides={"img_size": 16, "patch_size": 4})
    other = spectral_encoder(scheme="zscore", random_overrides={"img_size": 16, "patch_size": 4})
    assert again.checkpoint_id == enc.checkpoint_id != other.checkpoint_id  # cache key: what the features depend on


def test_spectral_baseline_runs_every_protocol(tiny_config):
    # SyntheticTask's labels shift every band's level: band statistics solve it.
    tiny_config["finetune"] = {"epochs": 1, "warmup_epochs": 0, "batch_size": 8}
    records = evaluate("spectral", SyntheticTask(), ["knn", "linear", "finetune"], config=tiny_config)
    acc = {r["protocol"]: r for r in records if r["metric"] == "accuracy"}
    assert set(acc) == {"knn", "linear", "finetune"}
    for r in acc.values():
        assert r["checkpoint"] == "spectral" and r["checkpoint_id"].startswith("spectral:")
        assert r["value"] > 0.8 and r["max_class_share"] < 0.9
    seg = evaluate("spectral", SyntheticTask("segmentation", n=(12, 4, 6)), "linear", config=tiny_config)
    assert next(r["value"] for r in seg if r["metric"] == "miou") > 0.5


def test_cli_baseline_flag(tmp_path, cli_eval_config):
    from geodiv import cli

    out = tmp_path / "r.json"
    assert cli.main(["evaluate", "--baseline", "spectral", "--task", "x", "--protocol", "linear", "--out", str(out),
                     "--config", str(cli_eval_config)]) == 0
    assert {r["checkpoint"] for r in json.loads(out.read_text())} == {"spectral"}
    assert cli.main(["evaluate", "--baseline", "spectral", "--checkpoint", "random", "--task", "x", "--protocol",
                     "knn", "--out", str(out)]) == 2


@pytest.mark.parametrize("type_", ["regression", "multilabel"])
def test_other_task_types_have_no_class_share(type_, tiny_config):
    records = evaluate("spectral", SyntheticTask(type_, n=(12, 4, 6)), "linear", config=tiny_config)
    assert all(r["max_class_share"] is None for r in records)
