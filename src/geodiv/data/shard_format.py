"""The geodiv shard format: what a sample is, how it is checked, and the statistics a manifest holds.

On disk a dataset is a folder with ``manifest.json`` and tar shards ``shard-000000.tar`` ... Each sample is a
group of tar members sharing a key: ``KEY.npy`` (uint16, bands x H x W), ``KEY.json`` (metadata: lat, lon,
continent, ...) and optional extra arrays ``KEY.<name>.npy`` (e.g. ``KEY.label.npy`` segmentation masks). Any
WebDataset reader can read the shards; geodiv's own reader (``shard_reader``) checks every sample against the
manifest; ``shard_writer`` writes them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from geodiv.errors import DataError
from geodiv.progress import log

MANIFEST = "manifest.json"
FORMAT = "geodiv-shards/1"
#: Metadata fields counted in the manifest (dataset-level composition).
COUNT_FIELDS: tuple[str, ...] = ("continent", "biome", "landcover", "climate")
#: Metadata fields every pretraining sample must carry.
REQUIRED_META: tuple[str, ...] = ("lat", "lon")
KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
NON_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")
BUFSIZE = 1 << 20

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
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise DataError(
            f"{where}: sample key {key!r} is not usable in a WebDataset shard; keys may hold only letters, digits,"
            " '_' and '-' (no dots or slashes)"
        )
    return key


def safe_key(text: str) -> str:
    """``text`` with every character a shard key may not hold (see :func:`check_key`) replaced by '-'."""
    return NON_KEY_CHARS.sub("-", text)


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


# ------------------------------------------------------------------------------------------------ checksums
def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(BUFSIZE):
            h.update(chunk)
    return h.hexdigest()
