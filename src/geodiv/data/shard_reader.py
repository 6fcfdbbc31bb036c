"""Reading geodiv shards: the manifest, checksums, and a fast tar/npy reader that checks every sample.

Regular tar members are read from a memory map without copying; anything unusual falls back to ``tarfile``. The
format is in ``shard_format``; ``shard_writer`` writes what this reads.
"""

from __future__ import annotations

import functools
import io
import json
import mmap
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from geodiv.data.shard_format import BUFSIZE, MANIFEST, sha256_file, to_uint16
from geodiv.errors import DataError


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
    with open(path, "rb", buffering=BUFSIZE) as fh:
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
