import json

import numpy as np
import pytest
import torch

from geodiv.evaluate import evaluate
from geodiv.evaluate.baseline import PERCENTILES, SpectralStats, band_centre_scale, spectral_encoder
from geodiv.evaluate.runner import _FrozenFeatureHeads as _FROZEN_HEADS

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


def _captured_features(monkeypatch, checkpoint, task, config) -> tuple[dict, list[dict]]:
    """The frozen features the linear head is trained on, and the records."""
    from geodiv.evaluate import runner

    seen: dict = {}
    heads = _FROZEN_HEADS

    def capture(task_, tables, feats, *args, **kwargs):
        seen.update(feats)
        return heads(task_, tables, feats, *args, **kwargs)

    monkeypatch.setattr(runner, "_FrozenFeatureHeads", capture)
    records = evaluate(checkpoint, task, "linear", config=config)
    return seen, records


@pytest.mark.parametrize("type_", ["classification", "segmentation"])
def test_band_statistics_are_appended_to_an_encoders_features(monkeypatch, tiny_config, type_):
    task = SyntheticTask(type_, n=(12, 4, 6))
    own, own_records = _captured_features(monkeypatch, "random", task, tiny_config)
    stats, stats_records = _captured_features(monkeypatch, "spectral", task, tiny_config)
    with_stats = {**tiny_config, "features": {**tiny_config.get("features", {}), "band_statistics": True}}
    both, records = _captured_features(monkeypatch, "random", task, with_stats)
    for split in ("train", "val", "test"):
        d = own[split].shape[-1]
        assert both[split].shape == (*own[split].shape[:-1], d + stats[split].shape[-1])
        np.testing.assert_array_equal(both[split][..., :d], own[split])
        np.testing.assert_array_equal(both[split][..., d:], stats[split].astype(own[split].dtype))
    assert {r["checkpoint_id"] for r in records} == {own_records[0]["checkpoint_id"] + "+band_statistics"}
    assert all(any("band statistics appended" in n for n in r["notes"]) for r in records)
    # The baseline's own rows are the same with the option on: nothing is appended to the statistics themselves.
    again, again_records = _captured_features(monkeypatch, "spectral", task, with_stats)
    np.testing.assert_array_equal(again["test"], stats["test"])
    assert [r["value"] for r in again_records] == [r["value"] for r in stats_records]
    assert all(r["checkpoint_id"].startswith("spectral:") and "+" not in r["checkpoint_id"] for r in again_records)


def test_band_statistics_leave_fine_tuning_alone(tiny_config):
    tiny_config["finetune"] = {"epochs": 1, "warmup_epochs": 0, "batch_size": 8}
    task = SyntheticTask(n=(12, 4, 6))
    plain = evaluate("random", task, "finetune", config=tiny_config)
    tiny_config["features"] = {**tiny_config.get("features", {}), "band_statistics": True}
    appended = evaluate("random", task, "finetune", config=tiny_config)
    assert [(r["value"], r["checkpoint_id"], r["notes"]) for r in appended] == \
        [(r["value"], r["checkpoint_id"], r["notes"]) for r in plain]


def test_band_statistics_need_the_encoders_token_grid(tiny_config):
    from geodiv import models
    from geodiv.errors import InputError

    class NoConfig(torch.nn.Module):
        """A SatMAE encoder of patch 4 that does not say its patch size: the statistics would use 8."""

        def __init__(self):
            super().__init__()
            self.inner = models.build_encoder("tiny", img_size=16, patch_size=4)
            self.in_chans, self.img_size = 10, 16

        def forward_tokens(self, x):
            return self.inner.forward_tokens(x)

    tiny_config["features"] = {**tiny_config.get("features", {}), "band_statistics": True}
    with pytest.raises(InputError, match="another patch size"):
        evaluate(NoConfig(), SyntheticTask("segmentation", n=(12, 4, 6)), "linear", config=tiny_config)
