import numpy as np
import pytest
import torch

from geodiv.cli import main
from geodiv.errors import InputError
from geodiv.models import build_mae, extract_features, features_from_file, load_pretrained, save_checkpoint


@pytest.fixture
def mae_checkpoint(tmp_path, tiny):
    path = tmp_path / "checkpoint-0.pth"
    save_checkpoint(path, build_mae("tiny", **tiny))
    return path


@pytest.fixture
def inputs(tmp_path):
    x = np.random.default_rng(0).random((5, 10, 32, 32), dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


def test_features_from_file_matches_the_encoder_in_any_batching(tmp_path, mae_checkpoint, inputs):
    path, x = inputs
    shape = features_from_file(mae_checkpoint, path, tmp_path / "f.npy", pool="global", batch_size=2, device="cpu")
    feats = np.load(tmp_path / "f.npy")
    assert shape == feats.shape == (5, 48) and feats.dtype == np.float32
    encoder = load_pretrained(mae_checkpoint, kind="encoder")
    with torch.no_grad():
        direct = encoder.forward_features(torch.from_numpy(x), pool="global").numpy()
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-5)
    # global pooling ends in a fresh LayerNorm: each feature vector has mean 0 and unit variance
    np.testing.assert_allclose(feats.mean(1), 0, atol=1e-5)
    one_batch = extract_features(encoder, [torch.from_numpy(x)], pool="global", device="cpu")
    np.testing.assert_allclose(one_batch, feats, rtol=1e-5, atol=1e-5)
    cls = extract_features(encoder, [(x[:3], "labels"), {"image": x[3:]}], pool="cls", device="cpu")
    assert cls.shape == (5, 48) and not np.allclose(cls, feats)


def test_features_command(tmp_path, mae_checkpoint, inputs, capsys):
    path, _ = inputs
    out = tmp_path / "feats.npy"
    assert main(["features", "--checkpoint", str(mae_checkpoint), "--input", str(path), "--out", str(out),
                 "--pool", "cls", "--batch-size", "4", "--device", "cpu"]) == 0
    assert np.load(out).shape == (5, 48)
    assert "wrote features (5, 48)" in capsys.readouterr().out


def test_features_refuse_bad_inputs(tmp_path, mae_checkpoint):
    np.save(tmp_path / "bands.npy", np.zeros((2, 13, 32, 32), np.float32))
    with pytest.raises(InputError, match="13 bands per image but checkpoint"):
        features_from_file(mae_checkpoint, tmp_path / "bands.npy", tmp_path / "f.npy")
    np.save(tmp_path / "raw.npy", np.zeros((2, 10, 32, 32), np.uint16))
    with pytest.raises(InputError, match="already-normalised"):
        features_from_file(mae_checkpoint, tmp_path / "raw.npy", tmp_path / "f.npy")
    assert not (tmp_path / "f.npy").exists()
    assert main(["features", "--checkpoint", str(mae_checkpoint), "--input", str(tmp_path / "raw.npy"),
                 "--out", str(tmp_path / "f.npy")]) == 2


def test_features_refuse_non_finite_input_naming_the_sample(tmp_path, mae_checkpoint, inputs, capsys):
    path, x = inputs
    x = x.copy()
    x[3, 2, 5, 7] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(InputError, match=r"sample 3 \(0-based\) holds NaN"):
        features_from_file(mae_checkpoint, tmp_path / "nan.npy", tmp_path / "f.npy", batch_size=2, device="cpu")
    assert not (tmp_path / "f.npy").exists()
    x[3, 2, 5, 7] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(InputError, match="sample 3"):
        features_from_file(mae_checkpoint, tmp_path / "inf.npy", tmp_path / "f.npy", device="cpu")


def test_features_to_a_device_file_is_refused(mae_checkpoint, inputs, capsys):
    path, _ = inputs
    assert main(["features", "--checkpoint", str(mae_checkpoint), "--input", str(path), "--out", "/dev/null",
                 "--device", "cpu"]) == 2
    assert "not a regular file" in capsys.readouterr().err
