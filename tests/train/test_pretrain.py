"""The pretraining loop on real shards and the real (shrunk) MAE: determinism, resume, checkpoints, logs."""

from __future__ import annotations

import argparse

import pytest
import torch

from geodiv.errors import ConfigError
from geodiv.models import build_mae, load_checkpoint, load_pretrained
from geodiv.train import lr_at, mask_noise, newest_checkpoint, pretrain
from geodiv.train.logs import read_log

from .tiny import N_SAMPLES, TINY_MODEL, tiny_config

NO_PICTURES = {"visualize": False, "tensorboard": False, "every_steps": 1}


def _weights(path):
    return load_checkpoint(path)["model"]


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_gives_identical_weights_and_another_seed_does_not(shards, tmp_path):
    first = pretrain(tiny_config(shards, tmp_path / "a", log=NO_PICTURES, max_steps=3))
    second = pretrain(tiny_config(shards, tmp_path / "b", log=NO_PICTURES, max_steps=3))
    other = pretrain(tiny_config(shards, tmp_path / "c", log=NO_PICTURES, max_steps=3, seed=1))
    _assert_same_tensors(_weights(first), _weights(second))
    w, o = _weights(first), _weights(other)
    assert not torch.equal(w["blocks.0.attn.qkv.weight"], o["blocks.0.attn.qkv.weight"])
    # training moved the weights away from the initialisation
    init = build_mae("tiny", img_size=16, patch_size=8, seed=0, **TINY_MODEL["overrides"]).state_dict()
    assert not torch.equal(w["decoder_pred.0.weight"], init["decoder_pred.0.weight"])


def test_stop_and_resume_equals_uninterrupted(shards, tmp_path):
    """2 epochs straight vs. stopped mid-epoch (step 3), again at the epoch boundary (step 5), then resumed."""
    straight = pretrain(tiny_config(shards, tmp_path / "straight", log=NO_PICTURES))
    pretrain(tiny_config(shards, tmp_path / "stopped", log=NO_PICTURES, max_steps=3))
    pretrain(tiny_config(shards, tmp_path / "stopped", log=NO_PICTURES, max_steps=5), resume=True)
    resumed = pretrain(tiny_config(shards, tmp_path / "stopped", log=NO_PICTURES), resume=True)
    assert straight.name == resumed.name == "checkpoint-1.pth"
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    _assert_same_tensors(a["model"], b["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        _assert_same_tensors(sa, sb)
    assert a["geodiv"]["global_step"] == b["geodiv"]["global_step"] == 8
    assert a["geodiv"]["data_positions"] == b["geodiv"]["data_positions"]
    # the log of the interrupted run has each step once, with the same losses
    straight_log, resumed_log = read_log(tmp_path / "straight"), read_log(tmp_path / "stopped")
    assert [r["step"] for r in resumed_log] == list(range(1, 9))
    assert [r["loss"] for r in resumed_log] == [r["loss"] for r in straight_log]


def test_resume_without_checkpoint_starts_fresh_and_finished_run_returns_its_checkpoint(shards, tmp_path):
    cfg = tiny_config(shards, tmp_path / "run", log=NO_PICTURES, max_steps=2)
    path = pretrain(cfg, resume=True)
    assert path == newest_checkpoint(tmp_path / "run")
    again = pretrain(cfg, resume=True)  # nothing left to do: the same checkpoint, unchanged
    assert again == path
    assert load_checkpoint(again)["geodiv"]["global_step"] == 2


def test_checkpoint_layout_logs_and_pictures(shards, tmp_path):
    out = tmp_path / "run"
    final = pretrain(tiny_config(shards, out, log={"visualize": True, "tensorboard": False, "every_steps": 1}))
    assert sorted(p.name for p in out.glob("checkpoint-*.pth")) == ["checkpoint-0.pth", "checkpoint-1.pth"]
    ckpt = load_checkpoint(final)  # weights_only, argparse.Namespace allow-listed
    assert {"model", "optimizer", "epoch", "scaler", "args"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["scaler"] is None
    args = ckpt["args"]
    assert isinstance(args, argparse.Namespace)
    assert (args.input_size, args.patch_size, args.mask_ratio, args.accum_iter) == (16, 8, 0.75, 2)
    assert args.bands == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert args.dropped_bands == [0, 9, 10]
    assert args.grouped_bands == [[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]]
    assert args.lr == pytest.approx(1e-2 * 8 / 256)
    # the weights load strictly into the MAE and into the encoder
    mae = load_pretrained(final, kind="mae")
    assert set(mae.state_dict()) == set(ckpt["model"])
    encoder = load_pretrained(final, kind="encoder")
    assert encoder(torch.zeros(1, 10, 16, 16)).shape[-1] == 32
    # one log row per step, with the schedule's rate
    rows = read_log(out)
    assert [r["step"] for r in rows] == list(range(1, 9))
    for r in rows:
        expected = lr_at(r["step"] - 1, steps_per_epoch=4, lr=args.lr, min_lr=0.0, warmup_epochs=1, epochs=2)
        assert r["lr"] == pytest.approx(expected)
        assert r["loss"] > 0 and r["samples_per_s"] > 0
    assert [r["epoch"] for r in rows] == [0, 0, 0, 0, 1, 1, 1, 1]
    for epoch in (0, 1):
        png = (out / f"reconstruction-{epoch}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert not list(out.glob(".*tmp*"))  # atomic writes left no temporary files


def test_mask_noise_is_split_by_rows_across_ranks():
    full = mask_noise(seed=3, micro_step=7, global_batch=8, n_noise=12)
    again = mask_noise(seed=3, micro_step=7, global_batch=8, n_noise=12)
    assert torch.equal(full, again)
    assert not torch.equal(full, mask_noise(seed=3, micro_step=8, global_batch=8, n_noise=12))
    assert not torch.equal(full, mask_noise(seed=4, micro_step=7, global_batch=8, n_noise=12))


def test_dataset_smaller_than_an_effective_batch_is_refused(shards, tmp_path):
    cfg = tiny_config(shards, tmp_path / "run", optim={"batch_size": N_SAMPLES, "accum_iter": 2})
    with pytest.raises(ConfigError, match="smaller than one effective batch"):
        pretrain(cfg)
    assert not (tmp_path / "run").exists()


def test_effective_batch_sets_accumulation(shards, tmp_path):
    cfg = tiny_config(shards, tmp_path / "run", log=NO_PICTURES, max_steps=1,
                      optim={"batch_size": 4, "effective_batch": 12})
    path = pretrain(cfg)
    assert load_checkpoint(path)["args"].accum_iter == 3
    bad = tiny_config(shards, tmp_path / "bad", optim={"batch_size": 4, "effective_batch": 10})
    with pytest.raises(ConfigError, match="not a multiple"):
        pretrain(bad)


def test_newest_checkpoint_orders_epochs_numerically(tmp_path):
    assert newest_checkpoint(tmp_path) is None
    for epoch in (2, 9, 10):
        (tmp_path / f"checkpoint-{epoch}.pth").write_bytes(b"")
    (tmp_path / "checkpoint-final.pth").write_bytes(b"")
    assert newest_checkpoint(tmp_path).name == "checkpoint-10.pth"


def test_bf16_autocast_and_spatial_masking_run_on_cpu(shards, tmp_path):
    cfg = tiny_config(shards, tmp_path / "run", log=NO_PICTURES, max_steps=2, precision="bf16",
                      model={"mask_mode": "spatial"})
    ckpt = load_checkpoint(pretrain(cfg))
    assert ckpt["args"].spatial_mask is True
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values())  # autocast keeps fp32 master weights
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        pretrain(tiny_config(shards, tmp_path / "fp16", precision="fp16"))


def test_cli_pretrain_and_resume(shards, tmp_path, capsys):
    import yaml

    from geodiv.cli import main

    cfg = tiny_config(shards, tmp_path / "run", log=NO_PICTURES)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert main(["pretrain", str(path), "--set", "max_steps=1"]) == 0
    assert "checkpoint-0.pth" in capsys.readouterr().out
    assert main(["pretrain", str(path), "--resume", "--set", "max_steps=2"]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoint-0.pth")["geodiv"]["global_step"] == 2
    assert main(["pretrain", str(path), "--set", "optim.epochs=0"]) == 2  # invalid config: message, exit 2
    assert "optim.epochs" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [3, 4, 5])
def test_resume_is_exact_with_dataloader_workers(shards, tmp_path, stop):
    """One endless loader: 2 workers with 4 batches each per pass, 8 micro-batches (4 steps) per pass; stopped
    inside the first pass, at its end, and inside the second (the resumed workers skip a whole pass unread)."""
    kw = {"data": {"num_workers": 2}, "log": NO_PICTURES, "max_steps": 7}
    straight = pretrain(tiny_config(shards, tmp_path / "straight", **kw))
    pretrain(tiny_config(shards, tmp_path / "stopped", **{**kw, "max_steps": stop}))
    resumed = pretrain(tiny_config(shards, tmp_path / "stopped", **kw), resume=True)
    _assert_same_tensors(_weights(straight), _weights(resumed))
    assert load_checkpoint(resumed)["geodiv"]["data_positions"] == [[0, 14]]


def test_pretraining_on_a_bad_shard_leaves_nothing_behind(shards, tmp_path):
    import shutil

    from geodiv.errors import DataError

    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    first = bad / "shard-000000.tar"
    data = bytearray(first.read_bytes())
    data[1000] ^= 0xFF
    first.write_bytes(bytes(data))
    out = tmp_path / "run"
    with pytest.raises(DataError, match="shard-000000.tar"):
        pretrain(tiny_config(bad, out, log=NO_PICTURES))
    assert not out.exists()  # no folder with a header-only log.csv


def test_disk_full_during_a_checkpoint_names_the_disk(shards, tmp_path, monkeypatch, capsys):
    import yaml

    from geodiv.cli import main

    def short_write(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4310")

    monkeypatch.setattr(torch, "save", short_write)
    conf = tmp_path / "p.yaml"
    conf.write_text(yaml.safe_dump(tiny_config(shards, tmp_path / "run", log=NO_PICTURES).model_dump(mode="json")))
    assert main(["pretrain", str(conf), "--set", "optim.epochs=1", "--set", "optim.warmup_epochs=0"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the disk holding" in err and "checkpoint-0.pth" in err and "Traceback" not in err
    assert not list((tmp_path / "run").glob("*.pth")) and not list((tmp_path / "run").glob(".*.tmp-*"))


def test_a_bad_shard_is_found_before_the_dataloader_workers_start(shards, tmp_path):
    import shutil

    from geodiv.data import ShardStream
    from geodiv.errors import DataError

    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    last = sorted(bad.glob("shard-*.tar"))[-1]
    data = bytearray(last.read_bytes())
    data[700] ^= 0xFF
    last.write_bytes(bytes(data))
    stream = ShardStream([bad])
    with pytest.raises(DataError, match=last.name):
        stream.verify_shards(threads=2)
    with pytest.raises(DataError, match=last.name):
        pretrain(tiny_config(bad, tmp_path / "run", data={"num_workers": 1}, log=NO_PICTURES))
    # skipping streams record only the good shards as checked; workers then skip and report the bad one
    skipping = ShardStream([bad], on_error="skip")
    skipping.verify_shards()
    assert str(last) not in skipping._verified and len(skipping._verified) == len(skipping.shards) - 1


def test_transforms_on_the_device_train_like_the_workers_and_resume_exactly(shards, tmp_path):
    """transform_on="device" (the default on a GPU) on this CPU: the same crops reach the model, made per batch
    instead of per sample, so the losses agree to float32 rounding; a stopped run resumes to the same weights."""
    kw = {"log": NO_PICTURES, "max_steps": 5}
    workers = pretrain(tiny_config(shards, tmp_path / "workers", data={"transform_on": "workers"}, **kw))
    device = pretrain(tiny_config(shards, tmp_path / "device", data={"transform_on": "device"}, **kw))
    import importlib

    resolve = importlib.import_module("geodiv.train.pretrain").resolve_transform_on
    assert tiny_config(shards, tmp_path / "auto", **kw).data.transform_on == "auto"
    assert resolve("auto", torch.device("cuda", 0)) == "device" and resolve("auto", torch.device("cpu")) == "workers"
    assert resolve("workers", torch.device("cuda", 0)) == "workers"
    a, b = read_log(tmp_path / "workers"), read_log(tmp_path / "device")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4, 5]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4)
    for key, value in _weights(workers).items():
        torch.testing.assert_close(_weights(device)[key], value, rtol=1e-3, atol=1e-5)
    data = {"transform_on": "device", "num_workers": 2}
    pretrain(tiny_config(shards, tmp_path / "stopped", data=data, **{**kw, "max_steps": 3}))
    resumed = pretrain(tiny_config(shards, tmp_path / "stopped", data=data, **kw), resume=True)
    straight = pretrain(tiny_config(shards, tmp_path / "straight", data=data, **kw))
    _assert_same_tensors(_weights(straight), _weights(resumed))


@pytest.mark.parametrize(("workers", "batch", "warned"), [(2, 4, False), (2, 12, True), (0, 12, True)])
def test_a_pass_that_leaves_many_samples_unused_is_reported(shards, tmp_path, capsys, workers, batch, warned):
    """32 samples: 2 workers of 16 make 4 batches of 4 each (all used), but 1 batch of 12 each (24 of 32); one
    process alone makes 2 batches of 12 (24 of 32)."""
    cfg = tiny_config(shards, tmp_path / "run", log=NO_PICTURES, max_steps=1, data={"num_workers": workers},
                      optim={"batch_size": batch, "accum_iter": 1})
    pretrain(cfg)
    err = capsys.readouterr().err
    assert ("each pass uses 24 of this process's 32 samples" in err) == warned
    assert ("fewer data.num_workers or a smaller batch_size" in err) == (warned and workers > 0)
    assert "every reader reads every shard" not in err  # 8 shards for at most 2 readers


def test_fewer_shards_than_readers_is_reported(shards, tmp_path, capsys):
    """8 shards of 4 read by 9 DataLoader workers: each reads all 32 samples to keep 3 or 4."""
    cfg = tiny_config(shards, tmp_path / "run", log=NO_PICTURES, max_steps=1, data={"num_workers": 9},
                      optim={"batch_size": 2, "accum_iter": 1})
    pretrain(cfg)
    assert "8 shards for 9 readers (1 process(es) x 9 DataLoader worker(s))" in capsys.readouterr().err
