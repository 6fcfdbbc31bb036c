"""The CUDA paths of pretraining and feature extraction (skipped without a GPU; CI has none, a lent GPU runs them
through ``benchmarks/gpu_session.sh``): bf16 autocast, fp16 with a GradScaler, pinned-memory loading, nccl."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodiv.models import build_mae, extract_features, load_checkpoint, load_pretrained
from geodiv.train import pretrain

from .tiny import TINY_MODEL, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

NO_PICTURES = {"visualize": False, "tensorboard": False, "every_steps": 1}


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_pretrain_on_cuda_keeps_fp32_weights_that_load_on_cpu(shards, tmp_path, precision):
    cfg = tiny_config(shards, tmp_path / precision, log=NO_PICTURES, max_steps=3, precision=precision,
                      device="cuda", data={"num_workers": 2})
    ckpt = load_checkpoint(pretrain(cfg))  # loads to CPU
    assert ckpt["geodiv"]["global_step"] == 3
    init = build_mae("tiny", img_size=16, patch_size=8, seed=0, **TINY_MODEL["overrides"]).state_dict()
    for name, value in ckpt["model"].items():
        assert value.device.type == "cpu" and value.dtype == torch.float32, name
        assert torch.isfinite(value).all(), name
    assert not torch.equal(ckpt["model"]["decoder_pred.0.weight"], init["decoder_pred.0.weight"])
    if precision == "fp16":
        assert ckpt["scaler"] is not None and ckpt["scaler"]["scale"] > 0


def test_fp32_training_on_cuda_follows_cpu(shards, tmp_path, monkeypatch):
    """Same seed, same data, same steps: CUDA fp32 (TF32 off) ends within float rounding of the CPU run."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cpu = load_checkpoint(pretrain(tiny_config(shards, tmp_path / "cpu", log=NO_PICTURES, max_steps=3)))
    gpu = load_checkpoint(pretrain(tiny_config(shards, tmp_path / "gpu", log=NO_PICTURES, max_steps=3,
                                               device="cuda", precision="fp32")))
    for name, value in cpu["model"].items():
        torch.testing.assert_close(gpu["model"][name], value, rtol=1e-3, atol=1e-4, msg=name)


def test_features_on_cuda_match_cpu(tmp_path):
    mae = build_mae("tiny", img_size=32, patch_size=8)
    from geodiv.models import save_checkpoint

    path = tmp_path / "checkpoint-0.pth"
    save_checkpoint(path, mae)
    encoder = load_pretrained(path, kind="encoder")
    x = np.random.default_rng(0).random((6, 10, 32, 32), dtype=np.float32)
    on_cpu = extract_features(encoder, [torch.from_numpy(x)], pool="global", device="cpu")
    on_gpu = extract_features(encoder, [torch.from_numpy(x)], pool="global", device="cuda")
    # bf16 autocast on the GPU: agreement to bf16 precision after a LayerNorm
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.1)
    assert np.corrcoef(on_gpu.ravel(), on_cpu.ravel())[0, 1] > 0.99



def test_batch_transform_on_cuda_equals_the_worker_path(shards):
    """transform_on="device" as a GPU run uses it: pinned int16 batches, crops and resizes on the GPU."""
    from torch.utils.data import DataLoader

    from geodiv.data import ShardStream

    kw = {"size": 24, "seed": 2, "shuffle_buffer": 8}
    want = torch.cat(list(DataLoader(ShardStream(shards, **kw), batch_size=8, num_workers=2)))
    device = ShardStream(shards, transform_on="device", **kw)
    finish = device.batch_transform().to("cuda")
    got = [finish(*(t.to("cuda", non_blocking=True) for t in batch))
           for batch in DataLoader(device, batch_size=8, num_workers=2, pin_memory=True)]
    assert all(g.device.type == "cuda" and g.dtype == torch.float32 for g in got)
    torch.testing.assert_close(torch.cat(got).cpu(), want, atol=1e-5, rtol=1e-5)  # TF32 off by default
