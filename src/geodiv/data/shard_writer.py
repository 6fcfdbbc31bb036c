"""Writing geodiv shards: validated samples into deterministic WebDataset tars plus ``manifest.json``.

Tars are written byte-for-byte deterministically (fixed mtime/owner, sorted members), so a shard's sha256 depends
only on its samples: a resumed build ends with the same checksums as an uninterrupted one. The format is in
``shard_format``; ``shard_reader`` reads what this writes.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import atomic_path, json_default, write_json
from geodiv.bands import S2_BANDS, canonical_band
from geodiv.data.parallel import check_parallel, shard_executor
from geodiv.data.shard_format import (
    COUNT_FIELDS,
    FORMAT,
    KEY_RE,
    MANIFEST,
    REQUIRED_META,
    BandStats,
    OnError,
    Sample,
    SkipReport,
    check_key,
    check_meta,
    sha256_file,
    to_uint16,
)
from geodiv.data.shard_reader import decode_npy, iter_tar_groups
from geodiv.errors import DataError, GeodivError
from geodiv.progress import log, progress


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_sample(sample: Sample) -> dict[str, bytes | str]:
    """The tar members of one sample, as WebDataset's TarWriter takes them."""
    obj: dict[str, bytes | str] = {"__key__": sample.key, "npy": _npy_bytes(sample.image)}
    obj["json"] = json.dumps(sample.meta, sort_keys=True, allow_nan=False, default=json_default).encode("utf-8")
    for name, arr in sample.arrays.items():
        if not KEY_RE.match(name) or name in ("npy", "json"):
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
    check_parallel(workers, scheduler)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bands = [canonical_band(b) for b in bands]
    if shard_size < 1:
        raise GeodivError(f"shard_size must be >= 1, got {shard_size}")
    records = _start_run(out, {"bands": bands, "shard_size": shard_size, "config": config, "seed": seed}, resume)
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
            _write_serial(samples, start, sink)
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


def _start_run(out: Path, run_id: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
    """Record this build's settings in the progress folder; the finished shards a resumed build keeps (a resume
    with other settings is refused). Any manifest goes: one exists only for a finished build."""
    prog_dir = _progress_dir(out)
    prog_dir.mkdir(exist_ok=True)
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
    return records


def _write_serial(samples: Iterable[Any], start: int, sink: _ShardSink) -> None:
    """Input items from ``start`` checked and written in this process, in order."""
    spec = sink.spec
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


def _as_sample(item: Any) -> Sample:
    if isinstance(item, Sample):
        return item
    if isinstance(item, tuple) and len(item) in (3, 4):
        return Sample(*item)
    raise GeodivError(f"write_shards expects Sample or (key, image, meta[, arrays]) tuples, got {type(item).__name__}")
