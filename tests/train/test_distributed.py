"""2 gloo processes under torchrun give the same update as 1 process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from geodiv.models import build_mae, load_checkpoint
from geodiv.train import pretrain
from geodiv.train.distributed import init_distributed, resolve_device
from geodiv.train.logs import read_log

from .tiny import TINY_MODEL, tiny_config

#: Largest weight difference allowed after 4 AdamW steps (lr 6.25e-4) for parameters the loss determines. The two
#: runs differ only in float summation order (DDP averages two half-batch gradients), i.e. relative gradient
#: differences of ~1e-7; AdamW turns them into update differences of about lr x 1e-7 per step. Measured: <= 6e-8
#: (AMD EPYC, AVX2 and AVX-512 paths, 1 and 2 threads); the bound leaves a 16x margin for other CPUs.
ATOL = 1e-6


def key_bias_slices(state: dict[str, torch.Tensor]) -> dict[str, slice]:
    """The key third of every attention ``qkv.bias``. Softmax attention is invariant to adding one vector to all
    keys (q.(k + b) shifts every score of a query by the same q.b), so the loss's gradient with respect to the key
    bias is analytically zero. What each run computes there is rounding noise, which AdamW normalises up to
    a full step of size lr: the two runs may legitimately differ there by up to the step size (seen: 1.6e-5 on one
    CPU with 1 thread), so those entries are not what the comparison checks."""
    slices = {}
    for name, value in state.items():
        if name.endswith("attn.qkv.bias"):
            third = value.shape[0] // 3
            slices[name] = slice(third, 2 * third)
    return slices


def determined_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """Max |a - b| per parameter over the entries whose gradient is not analytically zero."""
    keys = key_bias_slices(a)
    diff = {}
    for name in a:
        delta = (a[name] - b[name]).abs()
        if name in keys:
            delta = torch.cat([delta[: keys[name].start], delta[keys[name].stop:]])
        diff[name] = delta.max().item()
    return diff


@pytest.mark.parametrize("workers", [0, 1])
def test_two_gloo_processes_match_one_process(shards, tmp_path, workers):
    # Rank r's micro-batch must be rows r*B..(r+1)*B of the 1-process batch: shards of B=4 samples, no
    # shuffle buffer (the shard order is shuffled the same way in both runs), no random crops. The masking
    # noise is drawn for the global batch and split by rows, so it matches by construction. One DataLoader
    # worker per rank reads what the rank itself would (global worker = rank), through the worker path: one endless
    # loader, each worker checking a shard's checksum the first time it reads it (no up-front check under DDP).
    common = {"data": {"augment": "eval", "shuffle_buffer": 0}, "log": {"visualize": False, "tensorboard": False,
              "every_steps": 1}}
    one = tiny_config(shards, tmp_path / "one", optim={"batch_size": 8, "warmup_epochs": 0.5}, **common)
    two = tiny_config(shards, tmp_path / "two", optim={"batch_size": 4, "warmup_epochs": 0.5},
                      **{**common, "data": {**common["data"], "num_workers": workers}})
    single = pretrain(one)

    config_file = tmp_path / "two.yaml"
    config_file.write_text(yaml.safe_dump(two.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GEODIV_PROGRESS": "0"}
    # --log-dir: torchrun's per-run folder goes under tmp_path, not a torchelastic_* folder left in /tmp
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--log-dir", str(tmp_path / "torchrun"),
           "-m", "geodiv", "pretrain", str(config_file)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    a, b = load_checkpoint(single), load_checkpoint(tmp_path / "two" / single.name)
    assert b["args"].world_size == 2 and b["args"].accum_iter == 2 and b["args"].batch_size == 4
    assert a["geodiv"]["effective_batch"] == b["geodiv"]["effective_batch"] == 16
    # data order: each rank stopped where the single process stopped (same epoch, same shard position)
    assert b["geodiv"]["data_positions"] == a["geodiv"]["data_positions"] * 2
    diff = determined_difference(a["model"], b["model"])
    assert max(diff.values()) <= ATOL, sorted(diff.items(), key=lambda kv: -kv[1])[:5]
    # the undetermined key-bias entries still moved no more than AdamW's steps allow (4 steps of at most ~lr)
    for name, keys in key_bias_slices(a["model"]).items():
        assert (a["model"][name][keys] - b["model"][name][keys]).abs().max().item() <= 4 * 6.25e-4 * 2
    # the tolerance is small against the update itself: the weights moved far more than ATOL
    init = build_mae("tiny", img_size=16, patch_size=8, seed=0, **TINY_MODEL["overrides"]).state_dict()
    moved = max((a["model"][k] - init[k]).abs().max().item() for k in init)
    assert moved > 20 * ATOL
    losses_one = [r["loss"] for r in read_log(tmp_path / "one")]
    losses_two = [r["loss"] for r in read_log(tmp_path / "two")]
    assert losses_one == pytest.approx(losses_two, abs=1e-6)


def test_a_run_resumed_on_two_processes_continues_at_a_fresh_pass(shards, tmp_path):
    """The shard split changes with the process count, so the exact stream cannot be replayed: each rank starts a
    pass that no batch of the first run came from; weights, optimiser and schedule continue."""
    cfg = tiny_config(shards, tmp_path / "run", max_steps=3, log={"visualize": False, "tensorboard": False},
                      optim={"batch_size": 4, "accum_iter": 1, "effective_batch": 8})
    first = load_checkpoint(pretrain(cfg))
    assert first["geodiv"]["data_positions"] == [[0, 6]]
    more = cfg.model_copy(update={"max_steps": 4})
    config_file = tmp_path / "more.yaml"
    config_file.write_text(yaml.safe_dump(more.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GEODIV_PROGRESS": "0"}
    # --log-dir: torchrun's per-run folder goes under tmp_path, not a torchelastic_* folder left in /tmp
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--log-dir", str(tmp_path / "torchrun"),
           "-m", "geodiv", "pretrain", str(config_file), "--resume"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "resuming on 2 processes from a run on 1" in result.stderr
    last = load_checkpoint(tmp_path / "run" / "checkpoint-0.pth")
    assert last["geodiv"]["global_step"] == 4
    fresh = 0 + 3 * (6 + 1)  # BatchSource.fresh_pass((0, 6)); one step of batch 4 x 1 micro-batch per rank
    assert last["geodiv"]["data_positions"] == [[fresh, 1], [fresh, 1]]


def test_without_torchrun_environment_it_is_one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    env = init_distributed("cpu")
    assert (env.rank, env.world_size, env.is_main, env.distributed) == (0, 1, True, False)
    assert resolve_device("auto") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
