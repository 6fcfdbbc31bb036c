"""Other people's WebDataset shards (e.g. the published pretrain-where shards, whose encoding is undocumented).

Each sample is a group of tar members ``KEY.<suffix>``. The image member and its decoder are configurable
(``image_key``: the suffix, e.g. ``npy``, ``image.npy``, ``pth``, ``tif``; ``array_key``: the entry inside an
``.npz`` or a dict saved with torch), or detected from the first sample: a single member whose suffix ends in
``.npy``, ``.npz``, ``.pth``/``.pt`` or ``.tif``/``.tiff`` (members named like labels or masks are not images);
with several candidates, one called ``image``/``img``/``x``/``data``/``input``/``s2`` wins. Metadata comes from a
``json`` member (``lat``/``latitude``, ``lon``/``longitude``), the label from ``label_key`` (a json field or a
``cls``/``txt`` member). Arrays are (C, H, W) or (H, W, C) (``layout: auto`` tells them apart by the band count).
Torch members load with ``torch.load(weights_only=True)``: tensors and plain containers, never code.
Pre-normalised floats cannot be stored as reflectance silently: give ``scale`` or ``denormalize: satmae``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from geodiv.bands import S2_BANDS, band_indices, canonical_band, satmae_stats
from geodiv.config import StrictModel
from geodiv.data.catalog import LAT_NAMES, LON_NAMES
from geodiv.data.shard_format import Sample, safe_key, to_uint16
from geodiv.data.shard_reader import decode_npy
from geodiv.errors import DataError, InputError

IMAGE_SUFFIXES: tuple[str, ...] = ("npy", "npz", "pth", "pt", "tif", "tiff")
IMAGE_NAMES: tuple[str, ...] = ("image", "img", "x", "data", "input", "s2", "bands", "pixels")
NOT_IMAGES: tuple[str, ...] = ("label", "labels", "mask", "target", "y", "seg", "cls")


class WebDatasetSourceConfig(StrictModel):
    kind: Literal["webdataset"] = "webdataset"
    #: shard paths or brace patterns ("train_shards/shard-{000000..000009}.tar")
    urls: str | list[str]
    image_key: str | None = None
    array_key: str | None = None
    meta_key: str = "json"
    label_key: str | None = None
    #: band names of the stored arrays, in order (default: 13 -> standard S2 order, 10 -> SatMAE's bands)
    band_names: list[str] | None = None
    layout: Literal["auto", "CHW", "HWC"] = "auto"
    scale: float = 1.0
    #: undo SatMAE's 8-bit normalisation of [0, 1] inputs (to approximate reflectance x 10000)
    denormalize: Literal["none", "satmae"] = "none"


def _suffix_ext(suffix: str) -> str:
    return suffix.rsplit(".", 1)[-1].lower()


def detect_image_key(keys: Sequence[str], where: str) -> str:
    """The member suffix holding the image, or a ``DataError`` listing what was found and how to configure it."""
    cands = [k for k in keys if _suffix_ext(k) in IMAGE_SUFFIXES and k.split(".")[0].lower() not in NOT_IMAGES]
    if len(cands) == 1:
        return cands[0]
    named = [k for k in cands if k.split(".")[0].lower() in IMAGE_NAMES]
    if len(named) == 1:
        return named[0]
    if not cands:
        raise DataError(
            f"{where}: no image member recognised among {', '.join(sorted(keys)) or 'no members'}; supported"
            f" image members end in {', '.join('.' + s for s in IMAGE_SUFFIXES)}. Set image_key (and array_key"
            " for .npz or torch dicts) in the webdataset source config"
        )
    raise DataError(f"{where}: several possible image members ({', '.join(cands)}); set image_key to one of them")


def _pick_array(obj: Any, array_key: str | None, where: str) -> Any:
    if isinstance(obj, dict) or hasattr(obj, "files"):
        keys = list(obj.files if hasattr(obj, "files") else obj.keys())
        if array_key is not None:
            if array_key not in keys:
                raise DataError(f"{where}: no entry {array_key!r}; entries: {', '.join(map(str, keys))}")
            return obj[array_key]
        named = [k for k in keys if str(k).lower() in IMAGE_NAMES]
        if len(keys) == 1 or len(named) == 1:
            return obj[keys[0] if len(keys) == 1 else named[0]]
        raise DataError(f"{where}: container with entries {', '.join(map(str, keys))}; set array_key")
    return obj


def decode_image(data: bytes, suffix: str, array_key: str | None, where: str) -> np.ndarray:
    ext = _suffix_ext(suffix)
    try:
        if ext == "npy":
            return np.array(decode_npy(data, where))
        if ext == "npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return np.asarray(_pick_array(z, array_key, where))
        if ext in ("pth", "pt"):
            import torch

            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            arr = _pick_array(obj, array_key, where)
            if not isinstance(arr, torch.Tensor):
                raise DataError(f"{where}: torch member holds {type(arr).__name__}, not a tensor")
            return arr.numpy()
        if ext in ("tif", "tiff"):
            from rasterio.io import MemoryFile

            with MemoryFile(data) as mem, mem.open() as src:
                return src.read()
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - decoder libraries raise many types; all mean a bad member
        raise DataError(f"{where}: cannot decode .{ext} member ({type(err).__name__}: {err})") from None
    raise DataError(f"{where}: no decoder for .{ext}; supported: {', '.join(IMAGE_SUFFIXES)}")


def to_chw(arr: np.ndarray, n_bands: int | None, layout: str, where: str) -> np.ndarray:
    if arr.ndim != 3:
        raise DataError(f"{where}: image has shape {arr.shape}; expected 3 axes (bands and two spatial)")
    if layout == "CHW":
        return arr
    if layout == "HWC":
        return np.moveaxis(arr, -1, 0)
    if n_bands is not None and arr.shape[0] == n_bands and arr.shape[-1] != n_bands:
        return arr
    if n_bands is not None and arr.shape[-1] == n_bands and arr.shape[0] != n_bands:
        return np.moveaxis(arr, -1, 0)
    c0, a, b = arr.shape
    if a == b != c0:  # square patches: the odd axis out holds the bands
        return arr
    if c0 == a != b:
        return np.moveaxis(arr, -1, 0)
    if arr.shape[0] <= 32 < arr.shape[-1]:
        return arr
    if arr.shape[-1] <= 32 < arr.shape[0]:
        return np.moveaxis(arr, -1, 0)
    raise DataError(f"{where}: cannot tell bands from pixels in shape {arr.shape}; set layout to CHW or HWC")


class ForeignShards:
    """Iterate foreign shards as :class:`Sample` objects (uint16, in ``bands`` order) via the webdataset library."""

    def __init__(self, cfg: WebDatasetSourceConfig, bands: Sequence[str] = S2_BANDS, size: int | None = None,
                 require_location: bool = True) -> None:
        self.cfg, self.bands, self.size, self.require_location = cfg, [canonical_band(b) for b in bands], size, require_location
        self._image_key = cfg.image_key  # detected from the first sample when not configured

    def _raw(self) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        urls = self.cfg.urls
        try:
            pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
            yield from pipeline
        except (OSError, ValueError) as err:
            raise DataError(f"foreign shards {urls}: cannot read ({err}); check the paths and that they are tar files") from None

    def records(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(key, raw members, metadata) without decoding images (a fast scan for catalogs)."""
        for raw in self._raw():
            key = str(raw["__key__"]).rsplit("/", 1)[-1]
            where = f"shard {raw.get('__url__', '?')}, sample {key}"
            meta: dict[str, Any] = {}
            if self.cfg.meta_key in raw:
                try:
                    meta = json.loads(raw[self.cfg.meta_key])
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    raise DataError(f"{where}: metadata member .{self.cfg.meta_key} is not JSON ({err})") from None
                if not isinstance(meta, dict):
                    raise DataError(f"{where}: metadata is not a JSON object")
            meta = self._normalise_meta(meta, raw, where)
            yield key, raw, meta

    def _normalise_meta(self, meta: dict[str, Any], raw: dict[str, Any], where: str) -> dict[str, Any]:
        out = dict(meta)
        for name, alts in (("lat", LAT_NAMES), ("lon", LON_NAMES)):
            v = next((meta[a] for a in alts if meta.get(a) is not None), None)
            if v is not None:
                out[name] = float(v)
        if self.require_location and ("lat" not in out or "lon" not in out):
            raise DataError(f"{where}: no lat/lon in its metadata; geodiv needs a location for every sample")
        lk = self.cfg.label_key
        if lk is not None:
            if lk in meta:
                out["label"] = meta[lk]
            elif lk in raw:
                text = raw[lk].decode("utf-8").strip()
                out["label"] = int(text) if text.lstrip("-").isdigit() else text
            else:
                raise DataError(f"{where}: no label {lk!r} in metadata or members")
        out["source"] = f"{raw.get('__url__', '')}#{raw['__key__']}"
        return out

    def __iter__(self) -> Iterator[Sample]:
        for key, raw, meta in self.records():
            yield self.sample(key, raw, meta)

    def sample(self, key: str, raw: dict[str, Any], meta: dict[str, Any]) -> Sample:
        """The decoded :class:`Sample` of one record of :meth:`records`; a bad image raises ``DataError``."""
        stored = [canonical_band(b) for b in self.cfg.band_names] if self.cfg.band_names else None
        where = f"shard {raw.get('__url__', '?')}, sample {key}"
        if self._image_key is None:
            self._image_key = detect_image_key([k for k in raw if not k.startswith("__")], where)
        image_key = self._image_key
        if image_key not in raw:
            raise DataError(f"{where}: no member .{image_key} (members: {', '.join(k for k in raw if not k.startswith('__'))})")
        arr = decode_image(raw[image_key], image_key, self.cfg.array_key, where)
        names = stored
        arr = to_chw(arr, len(names) if names else None, self.cfg.layout, where)
        if names is None:
            n = arr.shape[0]
            if n == len(S2_BANDS):
                names = list(S2_BANDS)
            else:
                from geodiv.bands import SATMAE_BANDS

                if n != len(SATMAE_BANDS):
                    raise DataError(f"{where}: {n} bands without names; give band_names in the source config")
                names = list(SATMAE_BANDS)
        if arr.shape[0] != len(names):
            raise DataError(f"{where}: image has {arr.shape[0]} bands, band_names lists {len(names)}")
        try:
            idx = band_indices(names, self.bands, where=where)
        except InputError as err:
            raise DataError(str(err)) from None
        arr = self._to_reflectance(arr[idx], [names[i] for i in idx], where)
        image = to_uint16(arr, len(self.bands), self.size, where)
        return Sample(safe_key(key), image, meta)

    def _to_reflectance(self, arr: np.ndarray, names: list[str], where: str) -> np.ndarray:
        if self.cfg.denormalize == "satmae":
            if not np.isfinite(arr).all():
                raise DataError(f"{where}: image has NaN/inf values")
            mean, std = satmae_stats(names)
            lo = np.array([m - 2 * s for m, s in zip(mean, std)])[:, None, None]
            span = np.array([4 * s for s in std])[:, None, None]
            arr = np.clip(arr.astype(np.float64) * span + lo, 0, None)
        elif self.cfg.scale != 1.0:
            arr = arr.astype(np.float64) * self.cfg.scale
        elif arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all() and np.abs(arr).max() <= 2.0:
            raise DataError(
                f"{where}: float values within [-2, 2] look normalised, not reflectance x 10000; set scale"
                " (e.g. 10000 for 0..1 reflectance) or denormalize: satmae"
            )
        return arr

