"""Encoder features of already-normalised inputs, in batches, on CPU or GPU: ``extract_features`` (used by
``geodiv features`` and by every evaluation protocol) and ``features_from_file``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from geodiv.atomic import atomic_path, check_target
from geodiv.errors import InputError
from geodiv.progress import progress


def default_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _images_of(batch: Any) -> torch.Tensor:
    # Loaders yield tensors, arrays, (images, labels, ...) tuples or {"image": ...} dicts.
    if isinstance(batch, dict):
        batch = batch.get("image", batch.get("images"))
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        # torch cannot wrap read-only memory (memory-mapped inputs): copy those, view the rest
        batch = torch.from_numpy(np.ascontiguousarray(batch) if batch.flags.writeable else np.array(batch))
    if not isinstance(batch, torch.Tensor):
        raise InputError(f"a feature batch must hold an image tensor/array, got {type(batch).__name__}")
    return batch


@torch.inference_mode()
def extract_features(
    encoder: torch.nn.Module,
    inputs: Any,
    pool: Literal["global", "cls"] = "global",
    device: str | torch.device | None = None,
    total: int | None = None,
    *,
    kind: Literal["pooled", "tokens"] = "pooled",
    batch_size: int = 64,
    bf16: bool = True,
) -> np.ndarray:
    """Frozen features of every image in ``inputs``, in batches: the one feature extractor of geodiv.

    ``inputs`` is an (N, C, H, W) array (taken ``batch_size`` images at a time) or an iterable of batches (tensors,
    arrays, or tuples/dicts holding them). ``kind="pooled"``: (N, D) float32 via ``forward_features(x, pool)``;
    ``kind="tokens"``: group-averaged patch tokens (N, L, D) via ``forward_tokens``, float16 (to halve a cache;
    tokens feed per-patch heads only). ``device``: where the batches run; the encoder is moved there in eval mode
    and moved back (and its train/eval mode restored) afterwards; default: where it is. With ``bf16`` the forward
    pass on CUDA runs under bf16 autocast (features come back float32).
    """
    if kind not in ("pooled", "tokens"):
        raise InputError(f"unknown feature kind {kind!r}")
    batches = inputs
    if isinstance(inputs, np.ndarray):
        total = len(inputs) if total is None else total
        batches = (inputs[start : start + batch_size] for start in range(0, len(inputs), batch_size))
    was_training = encoder.training
    home = next(encoder.parameters(), torch.empty(0)).device
    dev = torch.device(device) if device else home
    encoder.eval().to(dev)
    out: list[np.ndarray] = []
    on_cuda = dev.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and bf16 else torch.autocast("cpu", enabled=False)
    bar = progress(total=total, desc=f"features ({kind})", unit="img")
    try:
        for batch in batches:
            x = _images_of(batch)
            if on_cuda and x.device.type == "cpu":
                x = x.pin_memory()
            x = x.to(dev, dtype=torch.float32, non_blocking=True)
            with autocast:
                if kind == "pooled":
                    out.append(encoder.forward_features(x, pool=pool).float().cpu().numpy())
                else:
                    tokens = encoder.forward_tokens(x)  # (N, G, L, D)
                    out.append(tokens.float().mean(dim=1).cpu().numpy().astype(np.float16))
            bar.update(x.shape[0])
    finally:
        bar.close()
        encoder.to(home).train(was_training)
    if not out:
        return np.zeros((0, getattr(encoder, "embed_dim", 0)), dtype=np.float32)
    return np.concatenate(out, axis=0)


def features_from_file(
    checkpoint: str | os.PathLike[str],
    input_npy: str | os.PathLike[str],
    out_npy: str | os.PathLike[str],
    pool: Literal["global", "cls"] = "global",
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> tuple[int, int]:
    """Features of an (N, C, H, W) float32 ``.npy`` with an MAE or encoder checkpoint, written to ``out_npy``.

    ``global`` is SatMAE fine-tuning's global pooling from an MAE checkpoint: mean of the patch tokens after
    the last block (cls excluded), then a freshly initialised LayerNorm (the MAE's final norm is not used).
    ``cls`` is the final norm, then the cls token. Returns the shape written.
    """
    from geodiv.models.checkpoint import load_pretrained

    input_npy = Path(input_npy)
    out_npy = check_target(out_npy)  # refuse a device or folder before any work
    if not input_npy.is_file():
        raise InputError(f"input {input_npy} does not exist")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    try:
        images = np.load(input_npy, mmap_mode="r")
    except ValueError as err:
        raise InputError(f"{input_npy} is not a .npy array ({err})") from None
    if images.ndim != 4:
        raise InputError(f"{input_npy} holds shape {images.shape}; expected N x C x H x W normalised float32 images")
    if images.dtype.kind != "f":
        raise InputError(
            f"{input_npy} holds {images.dtype} values; expected already-normalised float32 images "
            "(normalise raw reflectances first, e.g. with geodiv.data.normalize.satmae_normalize)"
        )
    encoder = load_pretrained(checkpoint, kind="encoder")
    if images.shape[1] != encoder.config.in_chans:
        raise InputError(
            f"{input_npy} has {images.shape[1]} bands per image but checkpoint {checkpoint} takes "
            f"{encoder.config.in_chans}; select the checkpoint's bands (in its band order) before extracting"
        )
    n = images.shape[0]

    def batches() -> Iterable[np.ndarray]:
        for i in range(0, n, batch_size):
            batch = np.asarray(images[i : i + batch_size], dtype=np.float32)
            bad = ~np.isfinite(batch).reshape(len(batch), -1).all(axis=1)
            if bad.any():
                raise InputError(
                    f"{input_npy}: sample {i + int(np.argmax(bad))} (0-based) holds NaN or infinite values; "
                    "fill or drop such samples (e.g. masked pixels) before extracting features"
                )
            yield batch

    feats = extract_features(encoder, batches(), pool=pool, device=default_device(device), total=n)
    with atomic_path(out_npy, suffix=".npy") as tmp:
        np.save(tmp, feats)
    return feats.shape
