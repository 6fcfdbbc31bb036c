"""Inputs, encoders and the features cache shared by every evaluation protocol.

A task split is read once, its images mapped to the encoder's bands (by name), normalised
(``geodiv.data.normalize``; SatMAE's 8-bit scheme by default) and passed through the evaluation transform
(bicubic resize so that a centre crop of the model's input size keeps ``crop_pct`` of the image, then that crop;
segmentation resizes to the input size without cropping so that every labelled pixel stays in view).
Frozen features are computed once per (checkpoint, task, split, transform, feature kind) and cached as ``.npy``
(written atomically); kNN and the linear probe read the same arrays. The split's labels and locations are
cached beside them, so a second encoder on the same task does not re-read the images' labels either.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geodiv.atomic import atomic_path
from geodiv.bands import S2_BANDS, SATMAE_BANDS, canonical_band, satmae_stats
from geodiv.errors import DataError, InputError
from geodiv.progress import progress

CACHE_VERSION = 1


# ------------------------------------------------------------------------------------------- bands
@dataclass(frozen=True)
class BandPlan:
    """How to build the encoder's input channels from a task's bands: index into the task, or None = fill."""

    model_bands: tuple[str, ...]
    source_index: tuple[int | None, ...]
    fill_values: tuple[float, ...]  # raw (reflectance x 10000) value used for a missing band

    @property
    def filled(self) -> list[str]:
        return [b for b, i in zip(self.model_bands, self.source_index) if i is None]

    def notes(self) -> list[str]:
        if not self.filled:
            return []
        return [f"bands {', '.join(self.filled)} missing from the task: filled with the SatMAE (fMoW-Sentinel) mean"]


def plan_bands(
    task_bands: Sequence[str], model_bands: Sequence[str], *, missing: str = "error", where: str = "task"
) -> BandPlan:
    """Map the model's bands onto the task's, by name; missing bands are an error or mean-filled."""
    canon_task = [canonical_band(b) for b in task_bands]
    model = tuple(canonical_band(b) for b in model_bands)
    index: list[int | None] = [canon_task.index(b) if b in canon_task else None for b in model]
    absent = [b for b, i in zip(model, index) if i is None]
    if absent and missing != "mean":
        raise InputError(
            f"{where} lacks band(s) {', '.join(absent)} that the checkpoint was trained on; the task has "
            f"{', '.join(canon_task)}. Evaluate a checkpoint trained on the task's bands, or set "
            "features.missing_bands: mean in the evaluation config to fill them with the band's mean "
            "(the results then say so)."
        )
    means, _ = satmae_stats(model)
    fill = tuple(float(means[j]) if i is None else 0.0 for j, i in enumerate(index))
    return BandPlan(model, tuple(index), fill)


def select_bands(image: np.ndarray, plan: BandPlan) -> np.ndarray:
    """(C_task, H, W) -> (C_model, H, W) following ``plan``, keeping uint16 data uint16 (fills rounded)."""
    dtype = np.uint16 if image.dtype == np.uint16 else np.float32
    if dtype == np.uint16 and all(i is not None for i in plan.source_index):
        return image[list(plan.source_index)]
    out = np.empty((len(plan.source_index),) + image.shape[1:], dtype=dtype)
    for j, i in enumerate(plan.source_index):
        out[j] = image[i] if i is not None else (round(plan.fill_values[j]) if dtype == np.uint16
                                                 else plan.fill_values[j])
    return out


# --------------------------------------------------------------------------------------- transform
@dataclass(frozen=True)
class EvalTransform:
    """Normalisation scheme and geometry of the evaluation inputs (part of every cache key)."""

    scheme: str = "satmae"
    size: int = 96
    crop_pct: float = 0.875
    crop: bool = True  # False for segmentation (resize only)

    def key(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "size": self.size, "crop_pct": self.crop_pct, "crop": self.crop}


_NORMALIZERS: dict[tuple[str, tuple[str, ...]], Any] = {}


def normalize_images(x: np.ndarray, bands: Sequence[str], scheme: str) -> np.ndarray:
    """Normalise raw (N, C, H, W) images with ``geodiv.data.normalize`` -> float32.

    ``satmae``: SatMAE's 8-bit scheme; ``zscore``: (x - mean) / std with the same fMoW-Sentinel statistics
    (a downstream task has no pretraining-set statistics of its own); ``raw``: unchanged. uint16 images go
    through the lookup-table ``Normalizer`` (one gather per band), other dtypes through the formula.
    """
    from geodiv.data import normalize

    if scheme not in ("satmae", "zscore", "raw"):
        raise InputError(f"unknown normalisation scheme {scheme!r}; use satmae, zscore or raw")
    bands = tuple(bands)
    mean, std = satmae_stats(bands)
    if x.dtype == np.uint16:
        key = (scheme, bands)
        if key not in _NORMALIZERS:
            _NORMALIZERS[key] = normalize.Normalizer(scheme, bands, mean=mean, std=std)
        norm = _NORMALIZERS[key]
        return np.stack([norm(im) for im in x]) if len(x) else x.astype(np.float32)
    bands_first = np.moveaxis(x, 1, 0)  # the normalisers take bands first
    if scheme == "satmae":
        out = normalize.satmae_normalize(bands_first, bands)
    elif scheme == "zscore":
        out = normalize.zscore(bands_first, mean, std)
    else:
        out = normalize.raw(bands_first)
    return np.ascontiguousarray(np.moveaxis(np.asarray(out, dtype=np.float32), 0, 1))


def resize_center_crop(x: torch.Tensor, transform: EvalTransform) -> torch.Tensor:
    """SatMAE's evaluation geometry with ``geodiv.data.transforms`` (bicubic, antialias pinned): resize the shorter
    side to ``int(size / crop_pct)`` and centre-crop ``size``; with ``crop=False`` resize to ``size`` x ``size``."""
    from geodiv.data.transforms import eval_geometry, resample, resize

    size = transform.size
    if not transform.crop:
        return resize(x, (size, size))
    h, w = x.shape[-2:]
    arr = x.detach().cpu().numpy()
    out = resample(arr.reshape((-1, h, w)), eval_geometry(h, w, size, transform.crop_pct))
    return torch.from_numpy(out.reshape(arr.shape[:-2] + (size, size)))


def prepare_inputs(
    images: Sequence[np.ndarray], plan: BandPlan, transform: EvalTransform, batch_size: int = 256
) -> np.ndarray:
    """Raw task images (each (C_task, H, W), sizes may differ) -> float32 (N, C_model, S, S) model inputs."""
    out = np.empty((len(images), len(plan.model_bands), transform.size, transform.size), dtype=np.float32)
    start = 0
    while start < len(images):
        # Batch consecutive images of the same shape (usually the whole split).
        shape = images[start].shape[1:]
        stop = start + 1
        while stop < len(images) and stop - start < batch_size and images[stop].shape[1:] == shape:
            stop += 1
        raw = np.stack([select_bands(im, plan) for im in images[start:stop]])
        norm = normalize_images(raw, plan.model_bands, transform.scheme)
        out[start:stop] = resize_center_crop(torch.from_numpy(norm), transform).numpy()
        start = stop
    return out


# ---------------------------------------------------------------------------------------- encoders
@dataclass
class Encoder:
    """A frozen or trainable encoder with what evaluation needs to know about it."""

    module: torch.nn.Module
    checkpoint_id: str
    bands: tuple[str, ...]
    img_size: int
    source: str  # path, "random", or "module"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_id(path: str | os.PathLike[str]) -> str:
    """Content hash of a checkpoint (memoised by path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = _sha256_file(p)
    return _FILE_HASHES[key]


def module_id(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
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
    from geodiv import models

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
    recorded = _bands_from_args(models.load_checkpoint(path).get("args"))
    return Encoder(module, file_id(path), encoder_bands(module, recorded), encoder_img_size(module), str(path))


def resolve_device(device: str | None) -> str:
    """``device``, or ``cuda`` when a GPU is visible and ``cpu`` otherwise."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def extract(
    module: torch.nn.Module, inputs: np.ndarray, *, kind: str = "pooled", pool: str = "global", batch_size: int = 64,
    device: str | None = None,
) -> np.ndarray:
    """Frozen features: pooled (N, D) via ``forward_features``, or group-averaged patch tokens (N, L, D)
    via ``forward_tokens`` (float16 to halve the cache; tokens feed per-patch heads only). ``device``: where the
    batches run (the module is moved there and back; default: where it is)."""
    if kind not in ("pooled", "tokens"):
        raise InputError(f"unknown feature kind {kind!r}")
    was_training = module.training
    home = next(module.parameters(), torch.empty(0)).device
    dev = torch.device(device) if device else home
    module.eval().to(dev)
    chunks = []
    bar = progress(total=len(inputs), desc=f"features ({kind})", unit="img")
    try:
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))
                if dev.type == "cuda":
                    x = x.pin_memory().to(dev, non_blocking=True)
                if kind == "pooled":
                    chunks.append(module.forward_features(x, pool=pool).float().cpu().numpy())
                else:
                    tokens = module.forward_tokens(x)  # (N, G, L, D)
                    chunks.append(tokens.float().mean(dim=1).cpu().numpy().astype(np.float16))
                bar.update(len(x))
    finally:
        bar.close()
        module.to(home).train(was_training)
    if not chunks:
        dim = 0
        return np.zeros((0, dim), dtype=np.float32)
    return np.concatenate(chunks)


# ------------------------------------------------------------------------------------- split tables
@dataclass
class SplitTable:
    """Labels and locations of one split, in sample order."""

    keys: np.ndarray  # str
    labels: np.ndarray  # (n,) int / float, (n, K) multi-hot, (n, H, W) masks
    lat: np.ndarray  # float, NaN where unknown
    lon: np.ndarray
    continent: np.ndarray  # str, "" where unknown

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, idx: np.ndarray) -> SplitTable:
        return SplitTable(self.keys[idx], self.labels[idx], self.lat[idx], self.lon[idx], self.continent[idx])


def _stack_labels(labels: list[Any], task_type: str, where: str) -> np.ndarray:
    if not labels:
        return np.zeros((0,), dtype=np.int64)
    if task_type == "classification":
        return np.asarray(labels, dtype=np.int64)
    if task_type == "regression":
        return np.asarray(labels, dtype=np.float64)
    arrays = [np.asarray(v) for v in labels]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(
            f"{where}: labels have different shapes {sorted(shapes)[:3]}; multi-hot vectors and masks of a "
            "split must share one shape"
        )
    dtype = np.float32 if task_type == "multilabel" else np.int16
    return np.stack(arrays).astype(dtype)


def continent_labels(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(["" if v is None else str(v) for v in values], dtype=str)


def read_split(task: Any, split: str) -> tuple[list[np.ndarray], SplitTable]:
    """Iterate a task split once: raw images and the split's table."""
    images, keys, labels, lat, lon, cont = [], [], [], [], [], []
    where = f"task {task.name!r} split {split!r}"
    for s in progress(task.iter_split(split), total=split_size(task, split), desc=f"read {task.name}/{split}", unit="img"):
        image = np.asarray(s.image)
        if image.ndim != 3:
            raise DataError(f"{where}: sample {s.key} has an image of shape {image.shape}; expected (C, H, W)")
        if image.shape[0] != len(task.bands):
            raise DataError(
                f"{where}: sample {s.key} has {image.shape[0]} channels but the task names {len(task.bands)} bands"
            )
        images.append(image)
        keys.append(str(s.key))
        labels.append(s.label)
        lat.append(np.nan if s.lat is None else float(s.lat))
        lon.append(np.nan if s.lon is None else float(s.lon))
        cont.append(s.continent)
    table = SplitTable(
        np.asarray(keys, dtype=str),
        _stack_labels(labels, task.type, where),
        np.asarray(lat, dtype=np.float64),
        np.asarray(lon, dtype=np.float64),
        continent_labels(cont),
    )
    return images, table


def split_size(task: Any, split: str) -> int | None:
    """``task.n(split)``, or None where the task cannot count without reading (the split is read anyway)."""
    try:
        return int(task.n(split))
    except Exception:  # noqa: BLE001 - a count is only a hint (progress bar, cache key, empty-val check)
        return None


def task_fingerprint(task: Any) -> str:
    """Identity of a task's data for cache keys: its own ``fingerprint`` if it has one, else its description."""
    fp = getattr(task, "fingerprint", None)
    if fp:
        return str(fp)
    desc = {
        "name": task.name,
        "type": task.type,
        "classes": list(task.classes) if task.classes is not None else None,
        "bands": list(task.bands),
        "n": {s: split_size(task, s) for s in task.splits()},
        "path": str(getattr(task, "path", None) or getattr(task, "root", "") or ""),
        "options": str(getattr(task, "options", "")),
        "info": getattr(task, "info", None),
    }
    path = desc["path"]
    if path and os.path.exists(path):  # files rewritten in place invalidate the cache
        desc["mtime"] = os.stat(path).st_mtime_ns
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- cache
@dataclass
class FeatureStore:
    """Inputs, tables and features of task splits: in memory for this process, on disk under ``cache_dir``."""

    cache_dir: Path | None = None
    #: In-memory budget (raw images, inputs, features, tables); least recently used entries go first.
    max_memory_bytes: int = int(os.environ.get("GEODIV_EVAL_MEMORY_MB", "2048")) * 2**20
    _memory: OrderedDict = field(default_factory=OrderedDict)

    def _remember(self, key: str, value: Any) -> Any:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > 1 and sum(_nbytes(v) for v in self._memory.values()) > self.max_memory_bytes:
            self._memory.popitem(last=False)
        return value

    @staticmethod
    def digest(parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True).encode()).hexdigest()[:24]

    def _file(self, stem: str) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / stem

    def table(self, task: Any, split: str) -> SplitTable:
        key = self.digest({"what": "table", "task": task_fingerprint(task), "split": split})
        if key in self._memory:
            return self._memory[key]
        path = self._file(f"{_safe_name(task.name)}-{split}-table-{key}.npz")
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                table = SplitTable(z["keys"], z["labels"], z["lat"], z["lon"], z["continent"])
            return self._remember(key, table)
        _, table = self._raw(task, split)
        return table

    def _raw(self, task: Any, split: str) -> tuple[list[np.ndarray], SplitTable]:
        key = self.digest({"what": "raw", "task": task_fingerprint(task), "split": split})
        if key in self._memory:
            return self._memory[key]
        images, table = read_split(task, split)
        tkey = self.digest({"what": "table", "task": task_fingerprint(task), "split": split})
        path = self._file(f"{_safe_name(task.name)}-{split}-table-{tkey}.npz")
        if path is not None:
            with atomic_path(path) as tmp:
                np.savez(tmp, keys=table.keys, labels=table.labels, lat=table.lat, lon=table.lon,
                         continent=table.continent)
        self._remember(tkey, table)
        return self._remember(key, (images, table))

    def inputs(self, task: Any, split: str, plan: BandPlan, transform: EvalTransform) -> np.ndarray:
        """Model inputs (N, C, S, S) of a split (memory only: they are cheap to rebuild, large to store)."""
        key = self.digest(
            {"what": "inputs", "task": task_fingerprint(task), "split": split, "plan": _plan_key(plan),
             "transform": transform.key()}
        )
        if key in self._memory:
            return self._memory[key]
        images, _ = self._raw(task, split)
        return self._remember(key, prepare_inputs(images, plan, transform))

    def features(
        self,
        encoder: Encoder,
        task: Any,
        split: str,
        plan: BandPlan,
        transform: EvalTransform,
        *,
        kind: str = "pooled",
        pool: str = "global",
        batch_size: int = 64,
        device: str | None = None,
    ) -> np.ndarray:
        key = self.digest(
            {"what": "features", "checkpoint": encoder.checkpoint_id, "task": task_fingerprint(task), "split": split,
             "plan": _plan_key(plan), "transform": transform.key(), "kind": kind, "pool": pool}
        )
        if key in self._memory:
            return self._memory[key]
        path = self._file(f"{_safe_name(task.name)}-{split}-{kind}-{key}.npy")
        if path is not None and path.is_file():
            feats = np.load(path, allow_pickle=False)
            n = len(self.table(task, split))
            if feats.shape[0] != n:
                raise DataError(
                    f"feature cache {path} holds {feats.shape[0]} rows but split {split!r} of task {task.name!r} has "
                    f"{n} samples; delete the file and rerun"
                )
            return self._remember(key, feats)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        feats = extract(
            encoder.module, self.inputs(task, split, plan, transform), kind=kind, pool=pool, batch_size=batch_size,
            device=device,
        )
        if path is not None:
            with atomic_path(path) as tmp:
                np.save(tmp, feats, allow_pickle=False)
        return self._remember(key, feats)


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, SplitTable):
        return sum(_nbytes(v) for v in (value.keys, value.labels, value.lat, value.lon, value.continent))
    return 0


def _plan_key(plan: BandPlan) -> dict[str, Any]:
    return {"bands": list(plan.model_bands), "index": list(plan.source_index)}


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))[:60]


# ------------------------------------------------------------------------------------ segmentation
def patch_fractions(masks: np.ndarray, grid: int, n_classes: int) -> np.ndarray:
    """(n, H, W) masks -> (n, grid*grid, K) fraction of each patch's valid pixels in each class (area pooling).

    Pixels outside [0, K) are ignored; a patch without valid pixels gets all-zero fractions.
    """
    m = torch.from_numpy(np.asarray(masks, dtype=np.int64))
    valid = (m >= 0) & (m < n_classes)
    one_hot = F.one_hot(torch.where(valid, m, 0), n_classes).permute(0, 3, 1, 2).float()
    one_hot = one_hot * valid[:, None].float()
    pooled = F.adaptive_avg_pool2d(one_hot, grid)  # (n, K, g, g)
    total = pooled.sum(dim=1, keepdim=True)
    frac = torch.where(total > 0, pooled / total.clamp_min(1e-12), torch.zeros_like(pooled))
    return frac.permute(0, 2, 3, 1).reshape(m.shape[0], grid * grid, n_classes).numpy()


def upsample_patch_scores(scores: np.ndarray, n_images: int, out_hw: tuple[int, int]) -> np.ndarray:
    """(n*L, K) per-token scores -> (n, H, W) argmax after bilinear upsampling of the (n, K, g, g) score maps."""
    k = scores.shape[1]
    grid = int(round((scores.shape[0] / n_images) ** 0.5))
    maps = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)).reshape(n_images, grid, grid, k)
    maps = maps.permute(0, 3, 1, 2)
    up = F.interpolate(maps, size=out_hw, mode="bilinear", align_corners=False)
    return up.argmax(dim=1).numpy().astype(np.int16)
