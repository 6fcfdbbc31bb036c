"""Checkpoints in SatMAE's layout, loaded without ever running code from the file.

Layout (SatMAE and the published pretrain-where weights): a torch pickle
``{'model': state_dict, 'optimizer': ..., 'epoch': int, 'scaler': ..., 'args': argparse.Namespace}``.
geodiv adds ``'model_config'`` (its ``ModelConfig`` as a dict) so its own checkpoints rebuild exactly.

Loading uses ``torch.load(weights_only=True)`` with only ``argparse.Namespace`` allow-listed: a file that
needs any other class (or a ``reduce`` that calls a function) is refused with ``UnsafeCheckpointError``,
never unpickled. ``.safetensors`` files (no code at all) are accepted too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geodiv.atomic import atomic_path
from geodiv.bands import SATMAE_GROUPS
from geodiv.errors import ConfigError, DataError, InputError, UnsafeCheckpointError
from geodiv.models.pos_embed import interpolate_grid_table
from geodiv.models.presets import ENCODER_KEYS, MAE_KEYS, MODEL_SIZES
from geodiv.models.satmae import build_encoder, build_mae
from geodiv.models.wrapping import unwrap

#: Classes a SatMAE/geodiv checkpoint may contain beyond tensors and plain containers.
ALLOWED_GLOBALS = (argparse.Namespace,)
#: Top-level key of the content checksum geodiv writes into its checkpoints (published ones have none).
CHECKSUM_KEY = "geodiv_sha256"


def content_digest(obj: Any) -> str:
    """sha256 of a checkpoint's content: every tensor's dtype, shape and bytes and every plain value, walked in a
    fixed order (the checksum entry itself excluded). Equal after a save/load round trip; any changed bit that
    still decodes changes it."""
    h = hashlib.sha256()
    _digest_into(h, {k: v for k, v in obj.items() if k != CHECKSUM_KEY} if isinstance(obj, Mapping) else obj)
    return h.hexdigest()


def _digest_into(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")  # the buffer itself, no copy
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=repr):
            h.update(f"{key!r}=".encode())
            _digest_into(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}:".encode())
        for item in obj:
            _digest_into(h, item)
    elif isinstance(obj, argparse.Namespace):
        h.update(b"N")
        _digest_into(h, vars(obj))
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int = 0,
    scaler: Any = None,
    args: Mapping[str, Any] | argparse.Namespace | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``path`` atomically in SatMAE's layout; ``extra`` keys are added at the top level.

    ``extra`` values must be tensors or plain Python data (dict, list, tuple, str, number, bool, None) so that
    the file stays loadable with ``weights_only=True``.
    """
    bare = unwrap(model)
    ckpt: dict[str, Any] = {
        "model": bare.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "args": args if isinstance(args, argparse.Namespace) else argparse.Namespace(**dict(args or {})),
    }
    config = getattr(bare, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        ckpt["model_config"] = config.to_dict()
    reserved = (set(ckpt) | {CHECKSUM_KEY}) & set(extra or {})
    if reserved:
        raise InputError(f"extra checkpoint keys {sorted(reserved)} would overwrite SatMAE's layout")
    ckpt.update(extra or {})
    ckpt[CHECKSUM_KEY] = content_digest(ckpt)
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(ckpt, tmp)
        except RuntimeError as err:
            # torch's zip writer reports a short write (full disk, quota) as "... unexpected pos N vs M".
            raise OSError(errno.ENOSPC, f"writing the checkpoint failed ({_first_line(err)})", str(path)) from err
    return path


@contextlib.contextmanager
def _allow_listed():
    if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5: scoped
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            yield
    else:  # torch 2.4: process-wide, but only ever these harmless classes
        torch.serialization.add_safe_globals(list(ALLOWED_GLOBALS))
        yield


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict; a ``.safetensors`` file comes back as ``{'model': tensors, 'metadata': {...}}``.

    A bare state_dict (a file whose top level is parameter tensors) is wrapped as ``{'model': it}``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
    with open(path, "rb") as fh:  # not readable (permissions, I/O): an OSError naming the path, for the CLI
        try:
            with _allow_listed():
                ckpt = torch.load(fh, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(
                f"refusing to load checkpoint {path}: it contains objects other than tensors, plain Python data and "
                f"argparse.Namespace, which could run code when unpickled ({_unsafe_reason(err)}). geodiv never unpickles "
                "such files. If you trust its origin, re-save only its weights in a trusted environment, e.g. "
                "torch.save({'model': ckpt['model']}, 'clean.pth'), or export them to .safetensors."
            ) from None
        except Exception as err:  # noqa: BLE001 - any decoding failure of a damaged file (KeyError, struct.error, ...)
            raise DataError(
                f"checkpoint {path} is not a readable torch file, it is damaged or truncated "
                f"({type(err).__name__}: {_first_line(err)}); copy it again or use another checkpoint"
            ) from None
    if isinstance(ckpt, Mapping) and "model" not in ckpt and ckpt and all(
        isinstance(v, torch.Tensor) for v in ckpt.values()
    ):
        ckpt = {"model": dict(ckpt)}
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise DataError(f"checkpoint {path} has no 'model' state_dict (top-level keys: {_keys(ckpt)})")
    ckpt = dict(ckpt)
    _check_content(path, ckpt, ckpt.pop(CHECKSUM_KEY, None))
    return ckpt


def _check_content(path: Path, ckpt: dict[str, Any], recorded: Any) -> None:
    """State dict entries must be tensors under string keys; geodiv's own checkpoints must match their checksum."""
    bad = [k for k, v in ckpt["model"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"checkpoint {path} is damaged: its 'model' entries {bad[:5]} are not named tensors; "
                        "copy it again or use another checkpoint")
    if recorded is None:
        return  # published SatMAE checkpoints carry no checksum
    if not isinstance(recorded, str) or content_digest(ckpt) != recorded:
        raise DataError(f"checkpoint {path} is corrupt: its content does not match the checksum geodiv wrote "
                        "with it (a changed bit in storage or transfer); copy it again or use another checkpoint")


def _load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    from safetensors import safe_open

    device = str(map_location)
    with open(path, "rb"):
        pass  # not readable (permissions, I/O): an OSError naming the path, for the CLI
    try:
        with safe_open(str(path), framework="pt", device=device) as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
            metadata = dict(fh.metadata() or {})
        model_config = json.loads(metadata["model_config"]) if "model_config" in metadata else None
    except Exception as err:  # noqa: BLE001 - any decoding failure of a damaged file (SafetensorError, ...)
        raise DataError(f"{path} is not a readable safetensors file, it is damaged or truncated "
                        f"({_first_line(err)}); copy it again or use another checkpoint") from None
    ckpt: dict[str, Any] = {"model": tensors, "metadata": metadata}
    if model_config is not None:
        ckpt["model_config"] = model_config
    _check_content(path, {"model": tensors}, metadata.get(CHECKSUM_KEY))
    return ckpt


def export_safetensors(
    ckpt: str | os.PathLike[str] | Mapping[str, Any] | nn.Module, out: str | os.PathLike[str]
) -> Path:
    """Write the weights of a checkpoint (path, loaded dict, or module) to ``out`` (.safetensors), atomically.

    The model config (when known) and epoch go into the file's string metadata.
    """
    from safetensors.torch import save_file

    if isinstance(ckpt, nn.Module):
        bare = unwrap(ckpt)
        data: Mapping[str, Any] = {"model": bare.state_dict()}
        if hasattr(getattr(bare, "config", None), "to_dict"):
            data = {**data, "model_config": bare.config.to_dict()}
    elif isinstance(ckpt, Mapping):
        data = ckpt
    else:
        data = load_checkpoint(ckpt)
    metadata = {"format": "pt", "layout": "satmae"}
    if data.get("model_config") is not None:
        metadata["model_config"] = json.dumps(data["model_config"])
    if data.get("epoch") is not None:
        metadata["epoch"] = str(data["epoch"])
    # safetensors wants contiguous tensors that share no memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in data["model"].items()}
    metadata[CHECKSUM_KEY] = content_digest({"model": tensors})
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return out


def _unsafe_reason(err: BaseException) -> str:
    # torch's message also suggests weights_only=False; keep only the line naming what the file needs.
    lines = [ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
    return lines[0] if lines else _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _keys(obj: Any) -> str:
    return ", ".join(map(str, list(obj)[:10])) if isinstance(obj, Mapping) else type(obj).__name__


# ------------------------------------------------------------------------------------------ load_pretrained
_STRIP_PREFIXES = ("module.", "_orig_mod.")
#: Keys an MAE checkpoint lacks for the encoder (``norm.*`` only when the file is a global-pool fine-tune).
_ENCODER_MAY_MISS = ("channel_cls_embed", "fc_norm.", "head.", "norm.")
_MAE_ONLY = ("mask_token", "decoder_")


def _clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in _STRIP_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _count_blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    ids = {int(k.split(".")[1]) for k in state if k.startswith(prefix) and k.split(".")[1].isdigit()}
    return max(ids) + 1 if ids else 0


def _group_sizes(state: Mapping[str, torch.Tensor]) -> list[int]:
    sizes: list[int] = []
    while f"patch_embed.{len(sizes)}.proj.weight" in state:
        sizes.append(int(state[f"patch_embed.{len(sizes)}.proj.weight"].shape[1]))
    return sizes


def _heads_for(width: int, key: str) -> int:
    for preset in MODEL_SIZES.values():
        if preset[key.replace("num_heads", "embed_dim")] == width:
            return preset[key]
    return max(1, width // (64 if key == "num_heads" else 32))


def infer_config(state: Mapping[str, torch.Tensor], ckpt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Model settings that a checkpoint determines: from geodiv's stored config when present, else from
    tensor shapes (widths, depths, patch and image size, group sizes) and, for heads, the preset widths.

    Group *members* cannot be read from shapes; they come from geodiv's config, SatMAE's ``args.grouped_bands``,
    or SatMAE's default groups when the group sizes are (4, 4, 2). Otherwise ``channel_groups`` must be given.
    """
    ckpt = ckpt or {}
    stored = ckpt.get("model_config")
    if isinstance(stored, Mapping):
        return dict(stored)
    for key in ("cls_token", "pos_embed", "channel_embed", "patch_embed.0.proj.weight"):
        if key not in state:
            raise DataError(
                f"checkpoint is not a SatMAE group-channel model: no {key!r} (first keys: {_keys(state)})"
            )
    d = state["cls_token"].shape[-1]
    c = state["channel_embed"].shape[-1]
    patch = state["patch_embed.0.proj.weight"].shape[-1]
    sizes = _group_sizes(state)
    n_patches = state["pos_embed"].shape[1] - 1
    grid = math.isqrt(n_patches)
    if grid * grid != n_patches:
        raise DataError(f"pos_embed has {n_patches} patch rows, not a square grid")
    cfg: dict[str, Any] = {
        "embed_dim": d, "channel_embed": c, "patch_size": patch, "img_size": grid * patch,
        "depth": _count_blocks(state, "blocks."), "num_heads": _heads_for(d, "num_heads"),
        "in_chans": sum(sizes),
    }
    if "blocks.0.mlp.fc1.weight" in state:
        cfg["mlp_ratio"] = state["blocks.0.mlp.fc1.weight"].shape[0] / d
    if "decoder_embed.weight" in state:
        dd = state["decoder_embed.weight"].shape[0]
        cfg.update(
            decoder_embed_dim=dd,
            decoder_channel_embed=state["decoder_channel_embed"].shape[-1],
            decoder_depth=_count_blocks(state, "decoder_blocks."),
            decoder_num_heads=_heads_for(dd, "decoder_num_heads"),
        )
    if "head.weight" in state:
        cfg["num_classes"] = state["head.weight"].shape[0]
    if "fc_norm.weight" in state or "norm.weight" in state:
        cfg["global_pool"] = "fc_norm.weight" in state or "decoder_embed.weight" in state
    args = ckpt.get("args")
    args_groups = getattr(args, "grouped_bands", None) if args is not None else None
    if args_groups and [len(g) for g in args_groups] == sizes:
        cfg["channel_groups"] = [list(map(int, g)) for g in args_groups]
    elif tuple(sizes) == tuple(len(g) for g in SATMAE_GROUPS):
        cfg["channel_groups"] = [list(g) for g in SATMAE_GROUPS]
    return cfg


def load_pretrained(path: str | os.PathLike[str], kind: str = "mae", **overrides: Any) -> nn.Module:
    """A SatMAE MAE (``kind='mae'``) or downstream encoder (``kind='encoder'``) with a checkpoint's weights.

    What the checkpoint determines is inferred (see ``infer_config``); ``overrides`` use the builder's names.
    ``img_size`` may differ from the checkpoint's: position tables are interpolated (bicubic) to the new grid.
    An MAE loads strictly. An encoder accepts an MAE checkpoint (leaving ``channel_cls_embed``, ``fc_norm.*``
    and ``head.*`` freshly initialised) or an encoder checkpoint. The model keeps the checkpoint's ``args`` as
    ``checkpoint_args`` (None without), so a caller need not read the file a second time for them.
    """
    if kind not in ("mae", "encoder"):
        raise ConfigError(f"kind must be 'mae' or 'encoder', got {kind!r}")
    ckpt = load_checkpoint(path)
    state = _clean_state_dict(ckpt["model"])
    if kind == "mae" and "decoder_embed.weight" not in state:
        raise ConfigError(f"checkpoint {path} holds no decoder (an encoder/fine-tuned model); load it with kind='encoder'")
    try:
        inferred = infer_config(state, ckpt)
    except DataError as err:
        raise DataError(f"checkpoint {path}: {err}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"checkpoint {path} does not describe a SatMAE model ({type(err).__name__}: "
                        f"{_first_line(err)}); use a SatMAE or geodiv checkpoint") from None
    if "channel_groups" not in inferred and "channel_groups" not in overrides:
        sizes = _group_sizes(state)
        raise ConfigError(
            f"checkpoint {path} has channel groups of sizes {sizes} whose bands it does not record; "
            "pass channel_groups=[[...], ...] (band indices of each group, in the order the model was trained)"
        )
    drop = ENCODER_KEYS if kind == "mae" else MAE_KEYS
    settings = {k: v for k, v in inferred.items() if k not in drop}
    settings.update(overrides)
    preset = next((name for name, p in MODEL_SIZES.items() if p["embed_dim"] == settings["embed_dim"]), "base")
    build = build_mae if kind == "mae" else build_encoder
    model = build(preset, **settings)

    # Position tables stored for another input size: resample them to the model's grid.
    for key in ("pos_embed", "decoder_pos_embed"):
        if key in state and key in model.state_dict():
            old = math.isqrt(state[key].shape[1] - 1)
            new = model.config.grid
            if old != new:
                state[key] = interpolate_grid_table(state[key], (old, old), (new, new))

    expected = model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise DataError(f"checkpoint {path} does not fit the model built from it and your overrides: "
                        + "; ".join(wrong[:5]))
    if kind == "mae":
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise DataError(f"checkpoint {path} is not a SatMAE MAE: missing {result.missing_keys[:8]}, "
                            f"unexpected {result.unexpected_keys[:8]}")
    else:
        unused = _MAE_ONLY + (("head.",) if isinstance(model.head, nn.Identity) else ())  # features only: no head
        result = model.load_state_dict({k: v for k, v in state.items() if not k.startswith(unused)}, strict=False)
        bad_missing = [k for k in result.missing_keys if not k.startswith(_ENCODER_MAY_MISS)]
        if bad_missing or result.unexpected_keys:
            raise DataError(f"checkpoint {path} does not fit the SatMAE encoder: missing {bad_missing[:8]}, "
                            f"unexpected {result.unexpected_keys[:8]}")
        model.loaded_missing_keys = list(result.missing_keys)
    model.checkpoint_args = ckpt.get("args")
    return model
