"""``ShardStream``: a streaming ``IterableDataset`` over geodiv shards, for pretraining and evaluation.

Memory stays flat as the dataset grows: shards are read sequentially, and only the shuffle buffer (raw, still
encoded samples) is held. Work is split by *global worker* = (DDP rank, DataLoader worker): with at least as many
shards as global workers each takes every k-th shard of the epoch's shard order; otherwise every worker reads all
shards and keeps every k-th sample. All randomness (shard order, buffer shuffle, crops, flips) comes from
``numpy.random.Generator(SeedSequence([seed, epoch, global_worker]))``: the stream is a pure function of
(seed, epoch, world size, number of workers), which is what makes exact resumption possible.

Resuming: ``load_state_dict({'epoch': e, 'batches_done': k, 'batch_size': b})`` (or ``start_sample=k`` with
``batch_size=1``) makes the next iteration continue epoch ``e`` after the first ``k`` batches of each rank. With
``epochs=None`` the stream runs pass after pass in the same DataLoader workers, and ``k`` counts batches from the
start of epoch ``e`` over as many passes as they span (whole passes are skipped without reading them).
Skipped samples are read but not decoded, and their random draws are replayed, so the continuation is identical
to the uninterrupted stream. With DataLoader workers the rule matches PyTorch's in-order round robin (batch j comes
from worker j mod num_workers), exact while every worker still delivers full batches (always, with
``equal_split``, except in an epoch's last partial batch).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from geodiv.bands import band_indices
from geodiv.data.normalize import Normalizer, NormKind, dataset_stats
from geodiv.data.shard_format import OnError, SkipReport
from geodiv.data.shard_reader import decode_group, iter_tar_groups, read_manifest, verify_shard
from geodiv.data.transforms import Augment, AugmentMode, BatchCropResample, CropParams, normalize_resample
from geodiv.errors import ConfigError, DataError


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardStream(IterableDataset):
    """Float32 (C, size, size) tensors from one or more geodiv datasets.

    Yields ``x``, or ``(x, label)`` when ``label`` names a metadata field / extra array (e.g. ``'label'``), with
    the sample's metadata dict appended when ``with_meta``. Use :meth:`collate` as the DataLoader ``collate_fn``
    when metadata is yielded. Segmentation masks (2-D labels) get the same crop/flip, resampled nearest.
    With ``transform_on="device"`` it yields ``(pixels, crop)`` instead, for :meth:`batch_transform` to finish on
    whole batches where the model runs.
    """

    def __init__(
        self,
        roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        bands: Sequence[str] | None = None,
        normalize: NormKind = "satmae",
        augment: AugmentMode = "train",
        size: int | None = None,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        hflip: bool = True,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        epochs: int | None = 1,
        label: str | None = None,
        with_meta: bool = False,
        verify: bool = True,
        equal_split: bool | None = None,
        start_sample: int = 0,
        stats: tuple[Sequence[float], Sequence[float]] | None = None,
        on_error: OnError = "raise",
        whole_batches: bool = False,
        transform_on: Literal["workers", "device"] = "workers",
    ) -> None:
        super().__init__()
        roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
        if not roots:
            raise ConfigError("ShardStream needs at least one dataset folder")
        self.manifests = [read_manifest(r) for r in roots]
        first = self.manifests[0]
        for m in self.manifests[1:]:
            if m["bands"] != first["bands"] or m["size"] != first["size"]:
                raise DataError(
                    f"datasets {first['root']} and {m['root']} differ in bands or size; stream them separately"
                )
        self.stored_bands = list(first["bands"])
        self.bands = list(bands) if bands is not None else self.stored_bands
        self.band_idx = band_indices(self.stored_bands, self.bands, where=f"dataset {first['root']}")
        self.stored_size = first["size"]
        self.size = int(size or self.stored_size)
        if normalize == "zscore" and stats is None:
            stats = dataset_stats(first, self.bands)
        mean, std = stats if stats is not None else (None, None)
        self.normalizer = Normalizer(normalize, [self.stored_bands[i] for i in self.band_idx], mean, std)
        self.augment = Augment(augment, self.size, scale=crop_scale, hflip=hflip)
        self._band_array = np.asarray(self.band_idx, dtype=np.int64)
        self.shuffle, self.shuffle_buffer = shuffle, max(int(shuffle_buffer), 0) if shuffle else 0
        self.seed, self.epochs = int(seed), epochs
        self.label, self.with_meta, self.verify, self.on_error = label, with_meta, verify, on_error
        self.equal_split = equal_split
        # A DataLoader with drop_last batches each worker's share on its own and throws away the worker's last
        # partial batch after it was read and decoded (with 12 workers and batch 1,024 on 32,768 samples, a quarter
        # of each pass). With whole_batches each worker stops after its last whole batch of ``batch_size`` (set by
        # load_state_dict): the same batches, without decoding the dropped samples.
        self.whole_batches = bool(whole_batches)
        # "device": yield the chosen bands' stored pixels and the crop, and let ``batch_transform()`` normalise,
        # crop and resize whole batches where the model runs (on a GPU, off the workers; see BatchCropResample).
        if transform_on not in ("workers", "device"):
            raise ConfigError(f"transform_on must be 'workers' or 'device', got {transform_on!r}")
        if transform_on == "device" and (label is not None or with_meta):
            raise ConfigError("transform_on='device' streams images alone (pretraining); labels and metadata need "
                              "transform_on='workers'")
        self.transform_on = transform_on
        self.shards = [(Path(m["root"]), s) for m in self.manifests for s in m["shards"]]
        self.n_samples = sum(m["n_samples"] for m in self.manifests)
        self.epoch = 0
        self.batches_done = int(start_sample)
        self.batch_size = 1
        self._verified: set[str] = set()

    # ---------------------------------------------------------------------------------------- position
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "batch_size": self.batch_size,
                "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue epoch ``state['epoch']`` after ``batches_done`` batches of ``batch_size`` on each rank."""
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ConfigError(f"resume state was recorded with seed {state['seed']}, this stream has {self.seed}")
        self.epoch = int(state["epoch"])
        self.batches_done = int(state.get("batches_done", 0))
        self.batch_size = int(state.get("batch_size", 1))

    def verify_shards(self, threads: int | None = None) -> None:
        """Check every shard's sha256 now, in threads (hashlib releases the GIL), so that DataLoader workers
        started later (they copy this stream) skip the check. Without it each worker hashes the shards it reads
        in every pass it starts: for a small dataset read for many passes, that is most of a pass's start-up.
        A shard that fails raises here (``on_error='raise'``) or is left to the workers to skip and report."""
        todo = [(root, shard) for root, shard in self.shards if str(root / shard["path"]) not in self._verified]

        def check(item: tuple[Path, dict[str, Any]]) -> str | None:
            root, shard = item
            try:
                verify_shard(root, shard)
            except DataError:
                if self.on_error == "raise":
                    raise
                return None
            return str(root / shard["path"])

        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            for path in pool.map(check, todo):
                if path is not None:
                    self._verified.add(path)

    # ---------------------------------------------------------------------------------------- splitting
    def _global_worker(self) -> tuple[int, int, int, int]:
        rank, world = dist_rank_world()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * nw + wid, world * nw, wid, nw

    def _plan(self, epoch: int, gid: int, gworld: int) -> tuple[list[int], int, int | None]:
        """(shard indices to read, sample stride filter, quota) for one global worker in one epoch."""
        order = np.arange(len(self.shards))
        if self.shuffle:
            np.random.default_rng([self.seed, epoch, 2**31]).shuffle(order)  # same order on every worker
        counts = np.array([s["n"] for _, s in self.shards])
        equal = self.equal_split if self.equal_split is not None else dist_rank_world()[1] > 1
        if len(order) >= gworld:
            mine = order[gid::gworld].tolist()
            quota = min(int(counts[order[w::gworld]].sum()) for w in range(gworld)) if equal else None
            return mine, 1, quota
        quota = int(counts.sum()) // gworld if equal else None
        return order.tolist(), gworld, quota

    def _limit(self, epoch: int, gid: int, gworld: int) -> tuple[list[int], int, int]:
        """(shard indices, stride, the number of samples to yield: all of the plan's, at most its quota, cut to
        whole batches when ``whole_batches``) for one global worker in one epoch."""
        shards, stride, quota = self._plan(epoch, gid, gworld)
        n = sum(self.shards[i][1]["n"] for i in shards)
        n = len(range(gid % stride, n, stride)) if stride > 1 else n
        n = min(n, quota) if quota is not None else n
        if self.whole_batches and self.batch_size > 1:
            n -= n % self.batch_size
        return shards, stride, n

    def samples_per_epoch(self, num_workers: int | None = None) -> int:
        """Samples this process yields per epoch, over all its DataLoader workers: those of the loader it runs in,
        or ``num_workers`` of them (0 for none) when asked from the process that will make the loader."""
        if num_workers is None:
            gid, gworld, _, nw = self._global_worker()
            rank = gid // nw
        else:
            rank, world = dist_rank_world()
            nw = max(1, int(num_workers))
            gworld = world * nw
        return sum(self._limit(self.epoch, w, gworld)[2] for w in range(rank * nw, (rank + 1) * nw))

    # ---------------------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Any]:
        gid, gworld, wid, nw = self._global_worker()
        # The DataLoader takes batch j from worker j % nw, starting again at worker 0 after a restart; so on
        # resuming after k batches, worker w plays the role of the original worker (w + k) % nw, and skips the
        # batches that role had delivered.
        # With ``epochs=None`` (one endless loader for a whole run) those batches may span several passes: whole
        # passes already delivered are skipped without reading them.
        role = (wid + self.batches_done) % nw
        gid = gid - wid + role
        skip = len(range(role, self.batches_done, nw)) * self.batch_size
        epoch, empty = self.epoch, 0
        while self.epochs is None or epoch < self.epoch + self.epochs:
            plan = self._limit(epoch, gid, gworld)
            limit = plan[2]
            empty = empty + 1 if limit == 0 else 0
            if self.epochs is None and empty == 3:  # an endless stream that never yields would hang its loader
                raise DataError(
                    f"ShardStream over {self.manifests[0]['root']}: DataLoader worker {wid} of this process gets no "
                    f"whole batch of {self.batch_size} in 3 passes in a row; use fewer processes or DataLoader "
                    "workers, a smaller batch_size, or more samples"
                )
            if skip >= limit:
                skip -= limit
            else:
                yield from self._epoch(epoch, gid, plan, skip)
                skip = 0
            epoch += 1

    def _raw_samples(self, shards: list[int], stride: int, gid: int, skips: SkipReport) -> Iterator[tuple]:
        ordinal = 0
        for i in shards:
            root, shard = self.shards[i]
            path = root / shard["path"]
            try:
                if self.verify and str(path) not in self._verified:
                    verify_shard(root, shard)
                    self._verified.add(str(path))
                with open(path, "rb", buffering=1 << 20) as fh:
                    for key, group in iter_tar_groups(fh, f"shard {path}"):
                        if stride == 1 or ordinal % stride == gid:
                            yield key, group, path
                        ordinal += 1
            except DataError as err:
                if self.on_error == "raise":
                    raise
                skips.add(str(err))

    def _epoch(self, epoch: int, gid: int, plan: tuple[list[int], int, int], skip: int) -> Iterator[Any]:
        """One global worker's samples of one epoch (``plan``: its ``_limit``), the first ``skip`` not decoded."""
        shards, stride, limit = plan
        rng = np.random.default_rng([self.seed, epoch, gid])
        skips = SkipReport()
        emitted = 0
        buffer: list[tuple] = []
        for item in self._raw_samples(shards, stride, gid, skips):
            if self.shuffle_buffer <= 1:
                out = item
            elif len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            else:
                j = int(rng.integers(len(buffer)))
                out, buffer[j] = buffer[j], item
            if emitted >= limit:
                break
            produced = self._produce(out, rng, emitted < skip, skips)
            emitted += 1
            if produced is not None:
                yield produced
        else:
            while buffer and emitted < limit:
                out = buffer.pop(int(rng.integers(len(buffer))))
                produced = self._produce(out, rng, emitted < skip, skips)
                emitted += 1
                if produced is not None:
                    yield produced
        skips.report(f"ShardStream epoch {epoch}")

    def _produce(self, item: tuple, rng: np.random.Generator, skipping: bool, skips: SkipReport) -> Any:
        key, group, path = item
        s = self.stored_size
        params = self.augment.params(s, s, rng)  # drawn even when skipping, to replay the random stream
        if skipping:
            return None
        try:
            image, meta = decode_group(key, group, len(self.stored_bands), s, f"shard {path}", copy=False)
        except DataError as err:
            if self.on_error == "raise":
                raise
            skips.add(str(err))
            return None
        if self.transform_on == "device":
            pixels = np.take(image, self._band_array, axis=0).view(np.int16)  # uint16 bits; int16 batches everywhere
            crop = torch.tensor([params.top, params.left, params.height, params.width, int(params.flip)])
            return torch.from_numpy(pixels), crop
        window = (params.top, params.left, params.height, params.width)
        geometry = self.augment.geometry(params.height, params.width, params.flip)
        # crop, normalise and resample in one compiled pass
        x = torch.from_numpy(normalize_resample(image, self._band_array, self.normalizer.table, window, geometry))
        out: list[Any] = [x]
        if self.label is not None:
            if self.label not in meta:
                raise DataError(f"shard {path}, sample {key}: no label field {self.label!r} in its metadata")
            out.append(self._label_tensor(meta[self.label], params))
        if self.with_meta:
            meta = {k: v for k, v in meta.items() if not isinstance(v, np.ndarray)}
            meta["key"] = key
            out.append(meta)
        return out[0] if len(out) == 1 else tuple(out)

    def _label_tensor(self, value: Any, params: CropParams) -> torch.Tensor:
        if isinstance(value, np.ndarray) and value.ndim == 2:
            mask = value[params.top : params.top + params.height, params.left : params.left + params.width]
            return self.augment.apply_mask(torch.from_numpy(np.array(mask)), params)
        return torch.as_tensor(np.array(value) if isinstance(value, np.ndarray) else value)

    def batch_transform(self) -> BatchCropResample:
        """For ``transform_on="device"``: the module that makes a batch's model input from what the stream
        yields (``module(pixels, crops)``; move it to the batch's device first)."""
        return BatchCropResample(self.normalizer, self.augment, self.stored_size)

    @staticmethod
    def collate(batch: list[Any]) -> Any:
        """Stack tensors, keep metadata dicts as a list (default_collate cannot batch None values)."""
        from torch.utils.data import default_collate

        if isinstance(batch[0], tuple) and isinstance(batch[0][-1], dict):
            head = [b[:-1] for b in batch]
            stacked = default_collate([h[0] if len(h) == 1 else h for h in head])
            metas = [b[-1] for b in batch]
            return (*stacked, metas) if isinstance(stacked, (list, tuple)) else (stacked, metas)
        return default_collate(batch)
