import argparse
import os
import pickle

import pytest
import torch

from geodiv.errors import ConfigError, DataError, UnsafeCheckpointError
from geodiv.models import (
    build_mae,
    export_safetensors,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)


def _satmae_base_state_dict() -> dict[str, torch.Tensor]:
    """ViT-Base 96 px / patch 8 / 10 bands / 3 groups, written from the key list in SatMAE's layout."""
    shapes = {
        "cls_token": (1, 1, 768), "pos_embed": (1, 145, 512), "channel_embed": (1, 3, 256),
        "mask_token": (1, 1, 512), "decoder_pos_embed": (1, 145, 384), "decoder_channel_embed": (1, 4, 128),
        "patch_embed.0.proj.weight": (768, 4, 8, 8), "patch_embed.1.proj.weight": (768, 4, 8, 8),
        "patch_embed.2.proj.weight": (768, 2, 8, 8),
        "norm.weight": (768,), "norm.bias": (768,), "decoder_embed.weight": (512, 768), "decoder_embed.bias": (512,),
        "decoder_norm.weight": (512,), "decoder_norm.bias": (512,),
        "decoder_pred.0.weight": (256, 512), "decoder_pred.0.bias": (256,),
        "decoder_pred.1.weight": (256, 512), "decoder_pred.1.bias": (256,),
        "decoder_pred.2.weight": (128, 512), "decoder_pred.2.bias": (128,),
    }
    for g in range(3):
        shapes[f"patch_embed.{g}.proj.bias"] = (768,)
    for prefix, n, d in (("blocks", 12, 768), ("decoder_blocks", 8, 512)):
        for i in range(n):
            b = f"{prefix}.{i}."
            shapes.update({
                b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
                b + "attn.qkv.bias": (3 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                b + "norm2.weight": (d,), b + "norm2.bias": (d,), b + "mlp.fc1.weight": (4 * d, d),
                b + "mlp.fc1.bias": (4 * d,), b + "mlp.fc2.weight": (d, 4 * d), b + "mlp.fc2.bias": (d,),
            })
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def satmae_base_checkpoint(tmp_path_factory):
    state = _satmae_base_state_dict()
    path = tmp_path_factory.mktemp("satmae") / "checkpoint-49.pth"
    args = argparse.Namespace(model="mae_vit_base_patch16", input_size=96, patch_size=8, mask_ratio=0.75,
                              blr=1e-4, dropped_bands=[0, 9, 10], grouped_bands=[[0, 1, 2, 6], [3, 4, 5, 7], [8, 9]])
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 49,
                "scaler": {"scale": 65536.0, "growth_factor": 2.0}, "args": args}, path)
    return path, state


def test_satmae_layout_checkpoint_loads_strictly_into_the_mae(satmae_base_checkpoint):
    path, state = satmae_base_checkpoint
    assert len(state) == 264 and sum(v.numel() for v in state.values()) == 111_624_448
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt["args"], argparse.Namespace) and ckpt["epoch"] == 49
    mae = load_pretrained(path, kind="mae")
    cfg = mae.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.channel_embed) == (768, 12, 12, 256)
    assert (cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads, cfg.decoder_channel_embed) == (512, 8, 16, 128)
    assert (cfg.img_size, cfg.patch_size, cfg.in_chans) == (96, 8, 10)
    loaded = mae.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    enc = load_pretrained(path, kind="encoder", num_classes=10)
    assert sorted(enc.loaded_missing_keys) == ["channel_cls_embed", "fc_norm.bias", "fc_norm.weight",
                                               "head.bias", "head.weight"]
    assert torch.equal(enc.blocks[11].mlp.fc2.weight, state["blocks.11.mlp.fc2.weight"])
    assert torch.equal(enc.fc_norm.weight, torch.ones(768)) and torch.equal(enc.fc_norm.bias, torch.zeros(768))


def test_round_trip_with_optimizer_and_args(tmp_path, images, tiny):
    mae = build_mae("tiny", **tiny)
    opt = torch.optim.AdamW(mae.parameters(), lr=1e-3, betas=(0.9, 0.95))
    mae(images, generator=torch.Generator().manual_seed(0))[0].backward()
    opt.step()
    path = save_checkpoint(tmp_path / "checkpoint-3.pth", mae, optimizer=opt, epoch=3,
                           args={"blr": 1e-4, "batch_size": 8}, extra={"note": "x"})
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-3.pth"]  # no temp file left behind
    ckpt = load_checkpoint(path)
    assert {"model", "optimizer", "epoch", "scaler", "args"} <= set(ckpt)
    assert ckpt["epoch"] == 3 and ckpt["args"].blr == 1e-4 and ckpt["note"] == "x" and ckpt["scaler"] is None
    opt2 = torch.optim.AdamW(build_mae("tiny", **tiny).parameters())
    opt2.load_state_dict(ckpt["optimizer"])
    again = load_pretrained(path, kind="mae")
    assert again.config == mae.config
    for k, v in mae.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    torch.testing.assert_close(again(images, generator=torch.Generator().manual_seed(1))[0],
                               mae(images, generator=torch.Generator().manual_seed(1))[0])


def test_safetensors_export_round_trip(tmp_path, tiny):
    mae = build_mae("tiny", **tiny)
    save_checkpoint(tmp_path / "c.pth", mae, epoch=1)
    out = export_safetensors(tmp_path / "c.pth", tmp_path / "c.safetensors")
    back = load_pretrained(out, kind="mae")
    assert back.config == mae.config
    assert all(torch.equal(back.state_dict()[k], v) for k, v in mae.state_dict().items())
    assert load_checkpoint(out)["metadata"]["epoch"] == "1"
    data = bytearray(out.read_bytes())
    data[-5] ^= 0x10  # a flipped bit in the last tensor's bytes: still decodes, the checksum catches it
    (tmp_path / "flip.safetensors").write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match the checksum"):
        load_checkpoint(tmp_path / "flip.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(bytes(data[:100]))
    with pytest.raises(DataError, match="damaged or truncated"):
        load_checkpoint(tmp_path / "cut.safetensors")


def test_bare_state_dict_and_other_image_size(tmp_path, images, tiny):
    mae = build_mae("tiny", **tiny)
    torch.save(mae.state_dict(), tmp_path / "bare.pth")
    heads = {"num_heads": 3, "decoder_num_heads": 2}  # not determined by shapes for non-preset widths
    again = load_pretrained(tmp_path / "bare.pth", kind="mae", **heads)
    assert again.config.img_size == 32 and again.config.embed_dim == 48
    bigger = load_pretrained(tmp_path / "bare.pth", kind="mae", img_size=48, **heads)
    assert bigger.pos_embed.shape == (1, 37, 32) and bigger.decoder_pos_embed.shape == (1, 37, 24)
    torch.testing.assert_close(bigger.pos_embed[:, 0], mae.pos_embed[:, 0])
    # The 32-px model run on 48-px input interpolates the same way on the fly.
    x = torch.rand(2, 10, 48, 48, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(2, 3 * 36, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mae(x, noise=noise)[0], bigger(x, noise=noise)[0])


class Custom:
    def __init__(self):
        self.value = 1


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_that_would_run_code_are_refused(tmp_path, tiny):
    state = build_mae("tiny", **tiny).state_dict()
    torch.save({"model": state, "args": Custom()}, tmp_path / "custom.pth")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load checkpoint .*custom.pth"):
        load_checkpoint(tmp_path / "custom.pth")
    marker = tmp_path / "pwned"
    torch.save({"model": state, "args": RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"GLOBAL \w+\.system"):
        load_pretrained(tmp_path / "evil.pth")
    assert not marker.exists()
    with open(tmp_path / "plain.pkl", "wb") as fh:  # not even a torch zip: a raw pickle
        pickle.dump({"model": RunsCode(marker)}, fh)
    with pytest.raises((UnsafeCheckpointError, DataError)):
        load_checkpoint(tmp_path / "plain.pkl")
    assert not marker.exists()


def test_broken_and_mismatched_checkpoints(tmp_path, tiny):
    mae = build_mae("tiny", **tiny)
    save_checkpoint(tmp_path / "c.pth", mae)
    data = (tmp_path / "c.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.pth"):
        load_checkpoint(tmp_path / "cut.pth")
    with pytest.raises(DataError, match="does not fit"):
        load_pretrained(tmp_path / "c.pth", kind="mae", embed_dim=96)
    enc_state = {k: v for k, v in mae.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    torch.save({"model": enc_state}, tmp_path / "enc.pth")
    with pytest.raises(ConfigError, match="kind='encoder'"):
        load_pretrained(tmp_path / "enc.pth", kind="mae")
    sd = mae.state_dict()
    odd = {k: v for k, v in sd.items() if not k.startswith("patch_embed.2")}
    odd["patch_embed.1.proj.weight"] = torch.zeros(48, 6, 8, 8)
    torch.save({"model": odd}, tmp_path / "odd.pth")
    with pytest.raises(ConfigError, match="pass channel_groups"):
        load_pretrained(tmp_path / "odd.pth", kind="encoder")


def _fuzz_files(data: bytes, n: int, seed: int) -> list[tuple[str, bytes]]:
    """Garbage, truncated and bit-flipped versions of a checkpoint's bytes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = [("empty", b""), ("zeros", bytes(4096)), ("text", b"not a checkpoint\n" * 10),
           ("pickle-int", pickle.dumps(3)), ("pickle-list", pickle.dumps([1, 2, 3]))]
    for i in range(n):
        out.append((f"random{i}", rng.bytes(int(rng.integers(1, 5000)))))
        out.append((f"cut{i}", data[: int(rng.integers(1, len(data)))]))
        flipped = bytearray(data)
        pos = int(rng.integers(0, len(data)))
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        out.append((f"flip{i}", bytes(flipped)))
    return out


def test_damaged_checkpoints_give_a_message_never_a_crash_or_a_silent_load(tmp_path, tiny):
    from geodiv.errors import GeodivError

    mae = build_mae("tiny", **tiny)
    save_checkpoint(tmp_path / "c.pth", mae, epoch=1, args={"blr": 1e-4})
    data = (tmp_path / "c.pth").read_bytes()
    loaded_flips = 0
    for name, blob in _fuzz_files(data, 25, seed=0):
        path = tmp_path / f"{name}.pth"
        path.write_bytes(blob)
        try:
            model = load_pretrained(path, kind="mae")
        except GeodivError as err:
            assert str(path) in str(err), (name, err)
            continue
        # A flip may land where it changes nothing that decodes (zip padding, a record's unused field):
        # then the model must be the saved one, bit for bit.
        assert name.startswith("flip"), name
        loaded_flips += 1
        for k, v in mae.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), (name, k)
    assert loaded_flips < 25
    # Well-formed torch files whose content is not a model: a message too, never KeyError/IndexError.
    sd = mae.state_dict()
    for name, obj in {"scalar_cls": {"model": {**sd, "cls_token": torch.zeros(())}}, "none": None,
                      "pos_1d": {"model": {**sd, "pos_embed": torch.zeros(5)}}, "ints": {"model": {"a": 1}},
                      "list": {"model": [1, 2]}, "pos_odd": {"model": {**sd, "pos_embed": torch.zeros(1, 7, 48)}},
                      "empty": {"model": {}}}.items():
        torch.save(obj, tmp_path / f"{name}.pth")
        for kind in ("mae", "encoder"):
            with pytest.raises(GeodivError, match=f"{name}.pth"):
                load_pretrained(tmp_path / f"{name}.pth", kind=kind)


def test_checksum_mismatch_is_refused_and_unchecked_files_still_load(tmp_path, tiny):
    from geodiv.models.checkpoint import CHECKSUM_KEY

    mae = build_mae("tiny", **tiny)
    save_checkpoint(tmp_path / "c.pth", mae)
    raw = torch.load(tmp_path / "c.pth", weights_only=False)
    assert CHECKSUM_KEY in raw
    raw["model"]["cls_token"] = raw["model"]["cls_token"] + 1e-3  # changed weights, stale checksum
    torch.save(raw, tmp_path / "changed.pth")
    with pytest.raises(DataError, match="does not match the checksum"):
        load_pretrained(tmp_path / "changed.pth", kind="mae")
    del raw[CHECKSUM_KEY]  # a published SatMAE-style file: no checksum, loads
    torch.save(raw, tmp_path / "published.pth")
    assert torch.equal(load_pretrained(tmp_path / "published.pth", kind="mae").cls_token, raw["model"]["cls_token"])
    assert CHECKSUM_KEY not in load_checkpoint(tmp_path / "c.pth")


def test_disk_full_while_saving_names_the_disk(tmp_path, tiny, monkeypatch):
    import errno

    from geodiv.errors import os_error_message

    def short_write(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4310")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path / "checkpoint-0.pth", build_mae("tiny", **tiny))
    assert info.value.errno == errno.ENOSPC
    message = os_error_message(info.value)
    assert "no space left on the disk holding" in message and "checkpoint-0.pth" in message
    assert list(tmp_path.iterdir()) == []  # neither the checkpoint nor its temp file
