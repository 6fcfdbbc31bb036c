"""WebDataset shards: write, read, verify.

On disk a dataset is a folder with ``manifest.json`` and tar shards ``shard-000000.tar`` ... Each sample is a
group of tar members sharing a key: ``KEY.npy`` (uint16, bands x H x W), ``KEY.json`` (metadata: lat, lon,
continent, ...) and optional extra arrays ``KEY.<name>.npy`` (e.g. ``KEY.label.npy`` segmentation masks). Any
WebDataset reader can read the shards; geodiv's own reader checks every sample against the manifest.

Tars are written byte-for-byte deterministically (fixed mtime/owner, sorted members), so a shard's sha256 depends
only on its samples: a resumed build ends with the same checksums as an uninterrupted one.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import mmap
import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from geodiv.atomic import atomic_path, json_default, write_json
from geodiv.bands import S2_BANDS, canonical_band
from geodiv.errors import DataError, GeodivError
from geodiv.progress import log, progress

MANIFEST = "manifest.json"
FORMAT = "geodiv-shards/1"
#: Metadata fields counted in the manifest (dataset-level composition).
COUNT_FIELDS: tuple[str, ...] = ("continent", "biome", "landcover", "climate")
#: Metadata fields every pretraining sample must carry.
REQUIRED_META: tuple[str, ...] = ("lat", "lon")
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_NON_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_BUFSIZE = 1 << 20

OnError = Literal["raise", "skip"]


@dataclass
class Sample:
    """One sample: ``image`` uint16 (C, H, W) in the dataset's band order, JSON-able ``meta``, extra arrays."""

    key: str
    image: np.ndarray
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class SkipReport:
    """Counts samples skipped under ``on_error: skip`` and keeps the first reasons for the final report."""

    def __init__(self, keep: int = 20) -> None:
        self.count = 0
        self.reasons: list[str] = []
        self._keep = keep

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < self._keep:
            self.reasons.append(reason)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "first_reasons": list(self.reasons)}

    def merge(self, recorded: dict[str, Any]) -> None:
        """Add the counts of an ``as_dict()`` record (a finished shard's, when resuming)."""
        self.count += recorded["count"]
        self.reasons.extend(recorded["first_reasons"][: max(0, self._keep - len(self.reasons))])

    def report(self, what: str) -> None:
        if self.count:
            log(f"{what}: skipped {self.count} bad sample(s); first: {self.reasons[0]}")


# --------------------------------------------------------------------------------------------- validation
def check_key(key: str, where: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise DataError(
            f"{where}: sample key {key!r} is not usable in a WebDataset shard; keys may hold only letters, digits,"
            " '_' and '-' (no dots or slashes)"
        )
    return key


def safe_key(text: str) -> str:
    """``text`` with every character a shard key may not hold (see :func:`check_key`) replaced by '-'."""
    return _NON_KEY_CHARS.sub("-", text)


def to_uint16(image: Any, n_bands: int | None, size: int | None, where: str) -> np.ndarray:
    """Validate an image as (C, H, W) reflectance x 10000 and return it as uint16; never silently wrong.

    Float input must be finite and integral-valued-in-range after rounding is not assumed: values outside
    0..65535 or NaN/inf are errors, fractional values are rounded to the nearest integer.
    """
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise DataError(f"{where}: image has shape {arr.shape}; expected (bands, height, width)")
    if n_bands is not None and arr.shape[0] != n_bands:
        raise DataError(f"{where}: image has {arr.shape[0]} bands; the dataset has {n_bands}")
    if size is not None and arr.shape[1:] != (size, size):
        raise DataError(f"{where}: image is {arr.shape[1]} x {arr.shape[2]} px; the dataset is {size} x {size}")
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            b = int(np.argwhere(bad)[0][0])
            raise DataError(f"{where}: image has {int(bad.sum())} NaN/inf pixel(s) (first in band {b}); fix or drop the sample")
        arr = np.rint(arr)
    elif arr.dtype.kind not in "iu":
        raise DataError(f"{where}: image dtype {arr.dtype} is not numeric")
    lo, hi = (arr.min(), arr.max()) if arr.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise DataError(
            f"{where}: pixel values span {lo}..{hi}, outside uint16 0..65535; geodiv stores reflectance x 10000"
        )
    return arr.astype(np.uint16)


def check_meta(meta: Any, required: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise DataError(f"{where}: metadata is {type(meta).__name__}, expected a JSON object")
    missing = [k for k in required if meta.get(k) is None]
    if missing:
        raise DataError(f"{where}: metadata lacks {', '.join(missing)}; every sample needs {', '.join(required)}")
    for k in ("lat", "lon"):
        if k in required:
            v = meta[k]
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
                raise DataError(f"{where}: metadata {k}={v!r} is not a finite number")
    return meta


def _as_sample(item: Any) -> Sample:
    if isinstance(item, Sample):
        return item
    if isinstance(item, tuple) and len(item) in (3, 4):
        return Sample(*item)
    raise GeodivError(f"write_shards expects Sample or (key, image, meta[, arrays]) tuples, got {type(item).__name__}")


# ---------------------------------------------------------------------------------------------- statistics
class BandStats:
    """Exact per-band sums in Python integers: order-independent, mergeable, one streaming pass."""

    def __init__(self, n_bands: int) -> None:
        self.n_pixels = 0
        self.sum = [0] * n_bands
        self.sumsq = [0] * n_bands
        self.min = [None] * n_bands
        self.max = [None] * n_bands

    def add(self, image: np.ndarray) -> None:
        # float64 sums of a uint16 image are exact up to 2**53 (~4e13 per 96x96 image at most), then kept as ints.
        flat = image.reshape(image.shape[0], -1)
        f = flat.astype(np.float64)
        s = f.sum(axis=1)
        sq = np.einsum("ij,ij->i", f, f)
        mn, mx = flat.min(axis=1), flat.max(axis=1)
        self.n_pixels += flat.shape[1]
        for b in range(flat.shape[0]):
            self.sum[b] += int(s[b])
            self.sumsq[b] += int(sq[b])
            self.min[b] = int(mn[b]) if self.min[b] is None else min(self.min[b], int(mn[b]))
            self.max[b] = int(mx[b]) if self.max[b] is None else max(self.max[b], int(mx[b]))

    def to_json(self) -> dict[str, Any]:
        return {"n_pixels": self.n_pixels, "sum": self.sum, "sumsq": self.sumsq, "min": self.min, "max": self.max}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BandStats:
        out = cls(len(d["sum"]))
        out.n_pixels, out.sum, out.sumsq = int(d["n_pixels"]), list(d["sum"]), list(d["sumsq"])
        out.min, out.max = list(d["min"]), list(d["max"])
        return out

    def merge(self, other: BandStats) -> None:
        self.n_pixels += other.n_pixels
        for b in range(len(self.sum)):
            self.sum[b] += other.sum[b]
            self.sumsq[b] += other.sumsq[b]
            for attr, fn in (("min", min), ("max", max)):
                mine, theirs = getattr(self, attr)[b], getattr(other, attr)[b]
                getattr(self, attr)[b] = theirs if mine is None else (mine if theirs is None else fn(mine, theirs))

    def summary(self, bands: Sequence[str]) -> dict[str, dict[str, float]]:
        out = {}
        n = self.n_pixels
        for b, name in enumerate(bands):
            if n == 0:
                out[name] = {"mean": 0.0, "std": 0.0, "min": 0, "max": 0}
                continue
            # exact integer arithmetic before the one division: var = (n*sumsq - sum^2) / n^2
            var = (n * self.sumsq[b] - self.sum[b] ** 2) / (n * n)
            out[name] = {
                "mean": self.sum[b] / n,
                "std": math.sqrt(max(var, 0.0)),
                "min": self.min[b],
                "max": self.max[b],
            }
        return out


# ------------------------------------------------------------------------------------------------- writing
def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_BUFSIZE):
            h.update(chunk)
    return h.hexdigest()


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_sample(sample: Sample) -> dict[str, bytes | str]:
    """The tar members of one sample, as WebDataset's TarWriter takes them."""
    obj: dict[str, bytes | str] = {"__key__": sample.key, "npy": _npy_bytes(sample.image)}
    obj["json"] = json.dumps(sample.meta, sort_keys=True, allow_nan=False, default=json_default).encode("utf-8")
    for name, arr in sample.arrays.items():
        if not _KEY_RE.match(name) or name in ("npy", "json"):
            raise DataError(f"sample {sample.key}: extra array name {name!r} must be a plain word (e.g. 'label')")
        obj[f"{name}.npy"] = _npy_bytes(np.asarray(arr))
    return obj


class ShardWriter:
    """Writes one shard: a deterministic tar (mtime 0, fixed owner), atomically renamed when closed."""

    def __init__(self, path: Path) -> None:
        import webdataset as wds

        self.path = path
        self._ctx = atomic_path(path)
        tmp = self._ctx.__enter__()
        self._fh = open(tmp, "wb")
        self._tar = wds.TarWriter(self._fh, user="geodiv", group="geodiv", mode=0o644, encoder=False, mtime=0,
                                  format="GNU_FORMAT")
        self.n = 0
        self.stats: BandStats | None = None
        self.counts: dict[str, Counter] = {f: Counter() for f in COUNT_FIELDS}
        self.keys: list[str] = []

    def write(self, sample: Sample) -> None:
        self._tar.write(encode_sample(sample))
        if self.stats is None:
            self.stats = BandStats(sample.image.shape[0])
        self.stats.add(sample.image)
        for f in COUNT_FIELDS:
            v = sample.meta.get(f)
            self.counts[f][str(v) if v is not None else "unknown"] += 1
        self.keys.append(sample.key)
        self.n += 1

    def close(self) -> dict[str, Any]:
        self._tar.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._ctx.__exit__(None, None, None)
        return {
            "path": self.path.name,
            "sha256": sha256_file(self.path),
            "n": self.n,
            "first_key": self.keys[0] if self.keys else None,
            "last_key": self.keys[-1] if self.keys else None,
        }

    def abort(self) -> None:
        try:
            self._tar.close()
        except Exception:  # noqa: BLE001 - already failing; the temp file is removed below
            pass
        self._fh.close()
        exc = DataError("shard aborted")
        self._ctx.__exit__(DataError, exc, None)


def _progress_dir(out: Path) -> Path:
    return out / ".progress"


def write_shards(
    samples: Iterable[Any],
    out: str | os.PathLike[str],
    shard_size: int = 1000,
    *,
    bands: Sequence[str] = S2_BANDS,
    size: int | None = None,
    config: Any = None,
    seed: int | None = None,
    required_meta: Sequence[str] = REQUIRED_META,
    on_error: OnError = "raise",
    resume: bool = False,
    total: int | None = None,
    desc: str = "shards",
    extra: dict[str, Any] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Write ``samples`` as WebDataset shards of ``shard_size`` samples plus ``manifest.json``; return the manifest.

    ``samples`` yields :class:`Sample` or ``(key, image, meta[, arrays])``. Images must have ``len(bands)`` bands;
    ``size`` (pixels) defaults to the first sample's. With ``resume=True`` finished shards whose checksum still
    matches are kept, and ``samples`` must be the same sequence as before: a ``Sequence`` is indexed past the
    finished part (its ``__getitem__`` may raise ``DataError`` for a bad item, skipped under ``on_error='skip'``),
    any other iterable is consumed and discarded up to that point. Sample errors name the sample; with
    ``on_error='skip'`` they are counted, reported at the end and recorded in the manifest.

    ``workers > 1`` or a Dask ``scheduler`` (geodiv.data.parallel) makes the samples of ``shard_size`` input items
    at a time in parallel, each chunk written by its worker; the shards and the manifest are byte-identical to a
    one-process build. That needs a ``Sequence`` (its ``subset(begin, end)`` method, when it has one, gives the
    picklable items ``begin..end-1``; else the whole sequence is sent) and a known ``size``.
    """
    from geodiv.data.parallel import check_parallel, shard_executor

    check_parallel(workers, scheduler)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bands = [canonical_band(b) for b in bands]
    if shard_size < 1:
        raise GeodivError(f"shard_size must be >= 1, got {shard_size}")
    prog_dir = _progress_dir(out)
    prog_dir.mkdir(exist_ok=True)
    run_id = {"bands": bands, "shard_size": shard_size, "config": config, "seed": seed}
    run_file = prog_dir / "run.json"
    records: list[dict[str, Any]] = []
    if resume and run_file.exists():
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        if json.loads(json.dumps(run_id, default=json_default)) != previous:
            raise GeodivError(
                f"{out} holds a build with different settings (config, seed, bands or shard size); "
                "build into a new folder or delete this one"
            )
        records = _finished_records(out)
    else:
        for old in prog_dir.glob("shard-*.json"):
            old.unlink()
    write_json(run_file, run_id)
    (out / MANIFEST).unlink(missing_ok=True)  # a manifest exists only for a finished build

    skips = SkipReport()
    for r in records:
        skips.merge(r["skipped"])
    start = records[-1]["consumed_end"] if records else 0
    if records:
        log(f"resuming {out}: keeping {len(records)} finished shard(s) ({sum(r['n'] for r in records)} samples)")

    parallel = workers > 1 or scheduler is not None
    if parallel and (not isinstance(samples, Sequence) or size is None):
        log(f"{out}: samples are a stream (or of unknown size); writing them in one process")
        parallel = False
    bar = progress(total=total, desc=desc, unit="sample")
    bar.update(sum(r["n"] for r in records))
    spec = _SampleSpec(bands, size, tuple(required_meta), on_error)
    sink = _ShardSink(out, shard_size, records, skips, spec, bar)
    try:
        if parallel:
            with shard_executor(workers, scheduler) as executor:
                _write_parallel(samples, start, sink, executor)  # type: ignore[arg-type]
        else:
            for index, item in _items_from(samples, start):
                sink.consumed = index + 1
                try:
                    sample = spec.validate(item, sink.seen_keys)
                except DataError as err:
                    sink.skip(err)
                    continue
                if spec.size is None:
                    spec.size = int(sample.image.shape[1])
                sink.add(index, sample)
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    finally:
        bar.close()

    manifest = _manifest(records, bands, spec.size, config, seed, skips, extra)
    write_json(out / MANIFEST, manifest)
    skips.report(f"write_shards {out}")
    return manifest


@dataclass
class _SampleSpec:
    """What every sample of a dataset must be (bands, size, metadata), and what a bad one does."""

    bands: list[str]
    size: int | None
    required_meta: tuple[str, ...]
    on_error: OnError

    def validate(self, item: Any, seen_keys: set[str]) -> Sample:
        """The item as a checked :class:`Sample` (uint16 image); ``DataError`` naming the sample if it is bad."""
        if isinstance(item, BaseException):
            raise item
        sample = _as_sample(item)
        where = f"sample {sample.key}"
        check_key(sample.key, where)
        if sample.key in seen_keys:
            raise DataError(f"{where}: duplicate key; keys must be unique within a dataset")
        sample.image = to_uint16(sample.image, len(self.bands), self.size, where)
        sample.meta = check_meta(sample.meta, self.required_meta, where)
        return sample


class _ShardSink:
    """Checked samples, in input order, into shards of exactly ``shard_size`` (the last may hold fewer)."""

    def __init__(self, out: Path, shard_size: int, records: list[dict[str, Any]], skips: SkipReport,
                 spec: _SampleSpec, bar: Any) -> None:
        self.out, self.shard_size, self.records, self.skips, self.spec, self.bar = out, shard_size, records, skips, spec, bar
        self.prog_dir = _progress_dir(out)
        self.writer: ShardWriter | None = None
        self.shard_skips = SkipReport()
        # keys of the shards a resumed build keeps: a duplicate across the resume point is still a duplicate
        self.seen_keys: set[str] = set()
        for r in records:
            with open(out / r["path"], "rb") as fh:
                self.seen_keys.update(key for key, _ in iter_tar_groups(fh, str(out / r["path"])))
        self.begin = 0
        self.consumed = records[-1]["consumed_end"] if records else 0

    def skip(self, err: DataError) -> None:
        if self.spec.on_error == "raise":
            raise err
        self.skips.add(str(err))
        self.shard_skips.add(str(err))

    def add(self, index: int, sample: Sample) -> None:
        if sample.key in self.seen_keys:
            self.skip(DataError(f"sample {sample.key}: duplicate key; keys must be unique within a dataset"))
            return
        self.seen_keys.add(sample.key)
        if self.writer is None:
            self.writer = ShardWriter(self._next_path())
            self.begin = index
        self.writer.write(sample)
        self.bar.update(1)
        if self.writer.n == self.shard_size:
            self._close(index + 1)

    def _next_path(self) -> Path:
        return self.out / f"shard-{len(self.records):06d}.tar"

    def _close(self, end: int) -> None:
        assert self.writer is not None
        self.records.append(_finish(self.writer, self.prog_dir, self.begin, end, self.shard_skips))
        self.writer, self.shard_skips = None, SkipReport()

    def adopt(self, part: dict[str, Any], last: bool) -> bool:
        """Take a worker's part file as the next shard, if it is exactly the shard :meth:`add` would write."""
        whole = part["n"] == self.shard_size or (last and part["n"] > 0)
        if self.writer is not None or not whole or self.seen_keys.intersection(part["keys"]):
            return False
        for _index, reason in part["skips"]:
            self.skip(DataError(reason))
        path = self._next_path()
        try:
            os.replace(part["part"], path)
        except FileNotFoundError:
            raise DataError(
                f"{part['part']}: a worker wrote this part but it is not visible here; with a Dask scheduler the"
                " output folder must be on a file system every worker shares"
            ) from None
        rec = {"path": path.name, "sha256": part["sha256"], "n": part["n"], "first_key": part["keys"][0],
               "last_key": part["keys"][-1], "consumed_begin": part["indices"][0], "consumed_end": part["end"],
               "stats": part["stats"], "counts": part["counts"], "skipped": self.shard_skips.as_dict()}
        write_json(self.prog_dir / f"{path.stem}.json", rec)
        self.records.append(rec)
        self.seen_keys.update(part["keys"])
        self.shard_skips = SkipReport()
        self.bar.update(part["n"])
        self.consumed = part["end"]
        return True

    def repack(self, part: dict[str, Any]) -> None:
        """Feed a part's samples (and its skips, in input order) through :meth:`add`, as one process would."""
        skips = list(part["skips"])
        with open(part["part"], "rb") as fh:
            for index, (key, group) in zip(part["indices"], iter_tar_groups(fh, part["part"])):
                while skips and skips[0][0] < index:
                    self.skip(DataError(skips.pop(0)[1]))
                image = decode_npy(group["npy"], key)
                arrays = {s[: -len(".npy")]: decode_npy(d, key) for s, d in group.items() if s.endswith(".npy") and s != "npy"}
                self.add(index, Sample(key, image, json.loads(bytes(group["json"])), arrays))
        for _index, reason in skips:
            self.skip(DataError(reason))
        Path(part["part"]).unlink()
        self.consumed = part["end"]

    def finish(self) -> None:
        if self.writer is not None:
            self._close(self.consumed)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _write_parallel(samples: Sequence[Any], start: int, sink: _ShardSink, executor: Any) -> None:
    """Chunks of ``shard_size`` input items made by the executor's workers, merged here in input order."""
    parts = sink.prog_dir / "parts"
    parts.mkdir(exist_ok=True)
    for stale in parts.glob("part-*"):
        stale.unlink()
    bounds = [(a, min(a + sink.shard_size, len(samples))) for a in range(start, len(samples), sink.shard_size)]
    subset = getattr(samples, "subset", None)
    futures = [
        executor.submit(_write_part, subset(a, b) if subset is not None else _Slice(samples, a, b), a, b,
                        str(parts / f"part-{a:012d}.tar"), sink.spec)
        for a, b in bounds
    ]
    try:
        for i, future in enumerate(futures):
            part = future.result()
            if not sink.adopt(part, last=i == len(futures) - 1):
                sink.repack(part)
    except BaseException:
        for f in futures:
            f.cancel()
        raise


class _Slice(Sequence):
    """Items ``begin..end-1`` of a sequence without a ``subset`` method (the whole sequence is pickled)."""

    def __init__(self, items: Sequence[Any], begin: int, end: int) -> None:
        self.items, self.begin, self.end = items, begin, end

    def __len__(self) -> int:
        return self.end - self.begin

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.items[self.begin + i]


def _write_part(items: Sequence[Any], begin: int, end: int, path: str, spec: _SampleSpec) -> dict[str, Any]:
    """In a worker: the valid samples of input items ``begin..end-1`` as one tar; what the merge needs to know."""
    writer = ShardWriter(Path(path))
    indices: list[int] = []
    skips: list[tuple[int, str]] = []
    seen: set[str] = set()
    try:
        for i, item in _items_from(items, 0):
            try:
                sample = spec.validate(item, seen)
            except DataError as err:
                if spec.on_error == "raise":
                    raise
                skips.append((begin + i, str(err)))
                continue
            seen.add(sample.key)
            writer.write(sample)
            indices.append(begin + i)
    except BaseException:
        writer.abort()
        raise
    rec = writer.close()
    return {"part": path, "sha256": rec["sha256"], "n": writer.n, "keys": writer.keys, "indices": indices,
            "skips": skips, "end": end, "stats": writer.stats.to_json() if writer.stats else None,
            "counts": {f: dict(sorted(c.items())) for f, c in writer.counts.items()}}


def _items_from(samples: Iterable[Any], start: int) -> Iterator[tuple[int, Any]]:
    """(index, item) pairs from ``start``; a Sequence's DataError for one index is passed on as the item."""
    if isinstance(samples, Sequence):
        for i in range(start, len(samples)):
            try:
                yield i, samples[i]
            except DataError as err:
                yield i, err
        return
    for i, item in enumerate(samples):
        if i >= start:
            yield i, item


def _finish(writer: ShardWriter, prog_dir: Path, begin: int, end: int, skips: SkipReport) -> dict[str, Any]:
    rec = writer.close()
    rec.update(
        consumed_begin=begin,
        consumed_end=end,
        stats=writer.stats.to_json() if writer.stats else None,
        counts={f: dict(sorted(c.items())) for f, c in writer.counts.items()},
        skipped=skips.as_dict(),
    )
    write_json(prog_dir / f"{Path(rec['path']).stem}.json", rec)
    return rec


def _finished_records(out: Path) -> list[dict[str, Any]]:
    """Progress records of finished shards whose file still matches its checksum, in order, up to the first gap."""
    kept = []
    for i in range(1_000_000):
        rec_file = _progress_dir(out) / f"shard-{i:06d}.json"
        if not rec_file.exists():
            break
        rec = json.loads(rec_file.read_text(encoding="utf-8"))
        shard = out / rec["path"]
        if not shard.exists() or sha256_file(shard) != rec["sha256"]:
            log(f"{shard}: missing or checksum differs from its progress record; rewriting from here")
            break
        kept.append(rec)
    # Progress records after a gap describe shards that will be rewritten.
    for stale in sorted(_progress_dir(out).glob("shard-*.json"))[len(kept):]:
        stale.unlink()
    return kept


def _manifest(
    records: list[dict[str, Any]],
    bands: list[str],
    size: int | None,
    config: Any,
    seed: int | None,
    skips: SkipReport,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    stats = BandStats(len(bands))
    counts: dict[str, Counter] = {f: Counter() for f in COUNT_FIELDS}
    for r in records:
        if r["stats"]:
            stats.merge(BandStats.from_json(r["stats"]))
        for f in COUNT_FIELDS:
            counts[f].update(r["counts"].get(f, {}))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "n_samples": sum(r["n"] for r in records),
        "bands": bands,
        "size": size,
        "dtype": "uint16",
        "counts": {f: dict(sorted(c.items())) for f, c in counts.items()},
        "stats": stats.summary(bands),
        "config": config,
        "seed": seed,
        "shards": [{"path": r["path"], "sha256": r["sha256"], "n": r["n"]} for r in records],
        "skipped": skips.as_dict(),
    }
    if extra:
        manifest.update(extra)
    return json.loads(json.dumps(manifest, default=json_default))


# ------------------------------------------------------------------------------------------------- reading
def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a dataset folder (or of the manifest file itself), checked for the fields readers need."""
    path = Path(root)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: not a finished geodiv dataset (an interrupted `geodiv build` leaves no manifest;"
            " run it again to finish)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); rebuild the dataset") from None
    missing = [k for k in ("n_samples", "bands", "size", "shards") if k not in manifest]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; not a geodiv manifest")
    check_manifest(manifest, path)
    manifest["root"] = str(path.parent)
    return manifest


def check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Refuse a manifest whose shard paths leave the dataset folder or whose counts disagree with its shards."""
    fix = "rebuild the dataset with `geodiv build` (finished shards are kept)"
    shards = manifest["shards"]
    if not isinstance(shards, list) or not all(
        isinstance(s, dict) and isinstance(s.get("path"), str) and isinstance(s.get("n"), int) and s["n"] >= 0
        and isinstance(s.get("sha256"), str) for s in shards
    ):
        raise DataError(f"{path}: 'shards' must list {{path, sha256, n}} entries; the manifest is damaged; {fix}")
    for s in shards:
        rel = PurePosixPath(s["path"])
        if rel.is_absolute() or ".." in rel.parts or "\\" in s["path"] or not rel.parts:
            raise DataError(f"{path}: shard path {s['path']!r} is outside the dataset folder; geodiv reads only "
                            f"shards inside {path.parent}; {fix}")
    listed = sum(s["n"] for s in shards)
    if manifest["n_samples"] != listed:
        raise DataError(f"{path}: n_samples is {manifest['n_samples']} but its shards hold {listed} samples; the "
                        f"manifest was edited or is damaged; {fix}")
    for name, counts in (manifest.get("counts") or {}).items():
        if isinstance(counts, dict) and counts and sum(counts.values()) != listed:
            raise DataError(f"{path}: the {name} counts add up to {sum(counts.values())} samples, the shards hold "
                            f"{listed}; the manifest was edited or is damaged; {fix}")


def verify_shard(root: Path, shard: dict[str, Any]) -> None:
    path = root / shard["path"]
    if not path.is_file():
        raise DataError(f"shard {path} listed in the manifest is missing")
    digest = sha256_file(path)
    if digest != shard["sha256"]:
        raise DataError(
            f"shard {path}: checksum mismatch (sha256 {digest[:12]}..., manifest says {shard['sha256'][:12]}...);"
            " the file is corrupt or was changed; rebuild it with `geodiv build` (finished shards are kept)"
        )


def verify_dataset(root: str | os.PathLike[str], deep: bool = True) -> dict[str, Any]:
    """Check every shard's checksum and (``deep``) decode every sample; return {n_samples, n_shards}."""
    manifest = read_manifest(root)
    base = Path(manifest["root"])
    n = 0
    if deep:
        for _ in iter_samples(base, verify=True):
            n += 1
        if n != manifest["n_samples"]:
            raise DataError(f"{base}: shards hold {n} samples, the manifest says {manifest['n_samples']}")
    else:
        for shard in manifest["shards"]:
            verify_shard(base, shard)
        n = manifest["n_samples"]
    return {"n_samples": n, "n_shards": len(manifest["shards"])}


_TAR_BLOCK = 512
_ZERO_BLOCK = bytes(_TAR_BLOCK)


def _tarfile_members(fileobj: Any) -> Iterator[tuple[str, bytes]]:
    """(name, data) of the regular-file members from the current position of ``fileobj``, read by ``tarfile``."""
    # Random access ("r:") is several times faster than stream mode for files; pipes need "r|".
    mode = "r:" if getattr(fileobj, "seekable", lambda: False)() else "r|"
    with tarfile.open(fileobj=fileobj, mode=mode) as tar:
        for member in tar:
            if not member.isfile():
                continue
            fh = tar.extractfile(member)
            data = fh.read() if fh is not None else b""
            if len(data) != member.size:
                raise tarfile.ReadError(f"member {member.name} truncated")
            yield member.name, data


def _plain_header(header: bytes) -> tuple[str, int] | None:
    """(name, size) of a plain regular-file ustar/GNU header with a valid checksum, else ``None``."""
    # other member types, base-256 sizes, ustar name prefixes
    if header[156:157] not in (b"0", b"\0") or header[124] & 0x80 or header[345] != 0:
        return None
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        name = header[:100].split(b"\0", 1)[0].decode("utf-8")
    except ValueError:  # UnicodeDecodeError included
        return None
    if stored != sum(header) - sum(header[148:156]) + 8 * 32:  # checksum counts its own field as spaces
        return None
    if name.endswith("/"):  # an old-style directory
        return None
    return name, size


def _tar_members(fileobj: Any) -> Iterator[tuple[str, bytes | memoryview]]:
    """(name, data) of the regular-file members of a tar, from the current position of ``fileobj``.

    Files are memory-mapped and their plain 512-byte headers parsed here, the data handed out as zero-copy
    read-only views of the mapping (the mapping lives as long as any view). At the first header that is not a plain
    regular file with a valid checksum (GNU/pax long names, links, corruption) ``tarfile`` takes over from that
    offset, so unusual archives and errors are handled exactly as ``tarfile`` handles them. Streams that cannot be
    mapped go to ``tarfile`` whole.
    """
    try:
        start = fileobj.tell()
        mapped = mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # no file descriptor, or an empty file
        yield from _tarfile_members(fileobj)
        return
    view = memoryview(mapped)
    end = len(mapped)
    offset = start
    while offset + _TAR_BLOCK <= end:
        header = mapped[offset : offset + _TAR_BLOCK]
        if header == _ZERO_BLOCK:  # end-of-archive marker; tarfile stops here too
            return
        parsed = _plain_header(header)
        if parsed is None:
            break
        name, size = parsed
        data_start = offset + _TAR_BLOCK
        if data_start + size > end:
            raise tarfile.ReadError(f"member {name} truncated")
        yield name, view[data_start : data_start + size]
        offset = data_start + -(-size // _TAR_BLOCK) * _TAR_BLOCK
    if offset >= end:
        return
    fileobj.seek(offset)
    yield from _tarfile_members(fileobj)


def iter_tar_groups(fileobj: Any, where: str) -> Iterator[tuple[str, dict[str, bytes | memoryview]]]:
    """(key, {suffix: data}) per sample from a tar stream, grouping consecutive members by key like WebDataset.

    ``data`` is bytes-like: read-only ``memoryview`` slices of the memory-mapped file for regular files (no copy),
    ``bytes`` otherwise. Truncated or corrupt tars raise ``DataError`` naming ``where`` and the last good key.
    """
    from webdataset.tariterators import base_plus_ext

    key: str | None = None
    group: dict[str, bytes | memoryview] = {}
    try:
        for name, data in _tar_members(fileobj):
            prefix, suffix = base_plus_ext(name)
            if prefix is None:
                continue
            if prefix != key:
                if key is not None:
                    yield key, group
                key, group = prefix, {}
            group[suffix] = data
    except (tarfile.TarError, EOFError, OSError) as err:
        after = f" after sample {key}" if key else ""
        raise DataError(f"{where}: corrupt or truncated tar{after} ({err}); rebuild or re-download it") from None
    if key is not None:
        yield key, group


@functools.lru_cache(maxsize=256)
def _npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran, dtype, data offset) of an .npy header; cached because numpy parses it with literal_eval
    and every sample of a dataset has the same header."""
    buf = io.BytesIO(header)
    version = np.lib.format.read_magic(buf)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    return shape, fortran, dtype, buf.tell()


def decode_npy(data: bytes, where: str) -> np.ndarray:
    """A read-only array viewing ``data`` (no copy); object arrays and malformed headers are errors."""
    try:
        # magic (6) + version (2) + header length (2 bytes in v1, 4 in v2/v3) + header
        if data[6:7] == b"\x01":
            end = 10 + int.from_bytes(data[8:10], "little")
        else:
            end = 12 + int.from_bytes(data[8:12], "little")
        shape, fortran, dtype, offset = _npy_header(bytes(data[:end]))
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
    except Exception as err:  # noqa: BLE001 - any parse failure is a corrupt member
        raise DataError(f"{where}: cannot decode .npy ({err})") from None


def decode_group(
    key: str,
    group: dict[str, bytes | memoryview],
    n_bands: int,
    size: int | None,
    where: str,
    decode_image: bool = True,
    copy: bool = True,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Image and metadata (with extra arrays merged in under their names) of one geodiv sample.

    ``copy=False`` returns read-only arrays that view the tar member bytes (the stream's fast path).
    """
    w = f"{where}, sample {key}"
    if "npy" not in group:
        raise DataError(f"{w}: no {key}.npy image member (members: {', '.join(sorted(group))})")
    if "json" not in group:
        raise DataError(f"{w}: no {key}.json metadata member")
    try:
        meta = json.loads(bytes(group["json"]))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{w}: metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{w}: metadata is not a JSON object")
    image = None
    if decode_image:
        image = decode_npy(group["npy"], w)
        if image.dtype != np.uint16:
            raise DataError(f"{w}: image dtype is {image.dtype}, geodiv shards store uint16")
        to_uint16(image, n_bands, size, w)
        image = image.copy() if copy else image
        for suffix, data in group.items():
            if suffix.endswith(".npy"):
                extra = decode_npy(data, w)
                meta[suffix[: -len(".npy")]] = extra.copy() if copy else extra
    return image, meta


def iter_shard(
    root: Path,
    shard: dict[str, Any],
    n_bands: int,
    size: int | None,
    verify: bool = True,
    decode_image: bool = True,
) -> Iterator[tuple[str, np.ndarray | None, dict[str, Any]]]:
    if verify:
        verify_shard(root, shard)
    path = root / shard["path"]
    n = 0
    with open(path, "rb", buffering=_BUFSIZE) as fh:
        for key, group in iter_tar_groups(fh, f"shard {path}"):
            image, meta = decode_group(key, group, n_bands, size, f"shard {path}", decode_image)
            n += 1
            yield key, image, meta
    if n != shard["n"]:
        raise DataError(f"shard {path}: holds {n} samples, the manifest says {shard['n']}")


def iter_samples(
    root: str | os.PathLike[str],
    verify: bool = True,
    *,
    decode_image: bool = True,
    shards: Sequence[int] | None = None,
) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """(key, image uint16 (C, H, W), meta) for every sample, in shard order.

    Extra arrays stored as ``KEY.<name>.npy`` appear in ``meta[name]`` as numpy arrays (e.g. ``meta['label']``).
    ``verify`` checks each shard's sha256 before reading it. ``decode_image=False`` yields ``None`` images (fast
    metadata scans).
    """
    manifest = read_manifest(root)
    base = Path(manifest["root"])
    listed = manifest["shards"] if shards is None else [manifest["shards"][i] for i in shards]
    for shard in listed:
        yield from iter_shard(base, shard, len(manifest["bands"]), manifest["size"], verify, decode_image)


def load_arrays(
    root: str | os.PathLike[str], verify: bool = True, limit: int | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """All images stacked (N, C, H, W) uint16 and their metadata; for small datasets (tasks, tests)."""
    images, metas = [], []
    for i, (_key, image, meta) in enumerate(iter_samples(root, verify=verify)):
        if limit is not None and i >= limit:
            break
        images.append(image)
        metas.append(meta)
    if not images:
        manifest = read_manifest(root)
        return np.zeros((0, len(manifest["bands"]), manifest["size"] or 0, manifest["size"] or 0), np.uint16), []
    return np.stack(images), metas

