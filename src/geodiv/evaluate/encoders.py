"""Evaluation encoders: a checkpoint, ``'random'`` or a module resolved to an encoder with its bands, input size
and a content id (part of every feature-cache key). Features are extracted with
``geodiv.models.extract_features``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geodiv import models
from geodiv.bands import S2_BANDS, SATMAE_BANDS, canonical_band
from geodiv.errors import InputError


# ---------------------------------------------------------------------------------------- encoders
@dataclass
class Encoder:
    """A frozen or trainable encoder with what evaluation needs to know about it."""

    module: torch.nn.Module
    checkpoint_id: str
    bands: tuple[str, ...]
    img_size: int
    source: str  # path, "random", or "module"


def module_id(module: torch.nn.Module) -> str:
    """The id that cached features of an encoder module are kept under: its weights, and what its forward does
    with them (class and ``repr``, which carries each submodule's ``extra_repr``). Weights alone are not enough:
    the same encoder wrapped with another readout (another pooling, say) must not get the first one's features."""
    h = hashlib.sha256()
    h.update(f"{type(module).__module__}.{type(module).__qualname__}\n{module!r}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _bands_from_args(args: Any) -> tuple[str, ...] | None:
    """Bands a checkpoint records: geodiv's ``args.bands``, or SatMAE's ``args.dropped_bands`` (13-band indices)."""
    bands = getattr(args, "bands", None) if args is not None else None
    if bands:
        return tuple(canonical_band(b) for b in bands)
    dropped = getattr(args, "dropped_bands", None) if args is not None else None
    if dropped is not None:
        return tuple(b for i, b in enumerate(S2_BANDS) if i not in set(dropped))
    return None


def encoder_bands(module: torch.nn.Module, recorded: Sequence[str] | None = None) -> tuple[str, ...]:
    """The bands an encoder expects, by name: as recorded (checkpoint / config), else from its channel count
    (10 = SatMAE's bands, 13 = all Sentinel-2 bands)."""
    cfg = getattr(module, "config", None)
    in_chans = getattr(cfg, "in_chans", None) or getattr(module, "in_chans", None)
    if recorded:
        bands = tuple(canonical_band(b) for b in recorded)
        if in_chans is not None and len(bands) != in_chans:
            raise InputError(
                f"the checkpoint records {len(bands)} bands ({', '.join(bands)}) but its model takes {in_chans} "
                "input channels; the checkpoint is inconsistent"
            )
        return bands
    if in_chans == len(SATMAE_BANDS):
        return SATMAE_BANDS
    if in_chans == len(S2_BANDS):
        return S2_BANDS
    raise InputError(
        f"cannot tell which bands the encoder expects (in_chans={in_chans} and no bands recorded); "
        "give them in the evaluation config (random_init.bands) or save the checkpoint with args.bands"
    )


def encoder_img_size(module: torch.nn.Module) -> int:
    cfg = getattr(module, "config", None)
    size = getattr(cfg, "img_size", None) or getattr(module, "img_size", None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else 96


def load_encoder(
    checkpoint: Any,
    *,
    random_preset: str = "tiny",
    random_overrides: dict[str, Any] | None = None,
    random_bands: Sequence[str] | None = None,
    seed: int = 0,
) -> Encoder:
    """Resolve ``checkpoint``: a path (``geodiv.models.load_pretrained``, bands from the checkpoint's ``args``),
    ``'random'``/None (zero pretraining: ``build_encoder(random_preset, seed=seed)``), or an ``nn.Module`` encoder
    used as is (bands from its ``bands`` attribute or channel count)."""
    if isinstance(checkpoint, torch.nn.Module):
        cid = "module:" + module_id(checkpoint)[:16]
        bands = encoder_bands(checkpoint, getattr(checkpoint, "bands", None))
        return Encoder(checkpoint, cid, bands, encoder_img_size(checkpoint), "module")
    if checkpoint is None or str(checkpoint) == "random":
        kwargs = {"seed": seed, **(random_overrides or {})}
        module = models.build_encoder(random_preset, **kwargs)
        spec = json.dumps({"preset": random_preset, "overrides": kwargs, "bands": list(random_bands or [])},
                          sort_keys=True, default=str)
        cid = "random:" + hashlib.sha256(spec.encode()).hexdigest()[:16]
        return Encoder(module, cid, encoder_bands(module, random_bands), encoder_img_size(module), "random")
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist; give a checkpoint file, or 'random' for zero pretraining")
    module = models.load_pretrained(path, kind="encoder")
    bands = encoder_bands(module, _bands_from_args(module.checkpoint_args))
    return Encoder(module, weights_id(module, bands), bands, encoder_img_size(module), str(path))


def weights_id(module: torch.nn.Module, bands: Sequence[str]) -> str:
    """The id of a loaded checkpoint's encoder: what its features depend on (:func:`module_id`: weights, class and
    ``repr``; and the bands it reads), not the file's other bytes. A checkpoint records its run's paths and
    optimiser state, so the same weights saved by two runs in two folders (a fresh clone's study, say) hash
    differently as files; by weights they share cached features and one ``checkpoint_id`` in results.csv."""
    return hashlib.sha256(f"{module_id(module)}\n{','.join(bands)}".encode()).hexdigest()
