"""ForTy (forest typology, v1): TFRecord shards of 128 x 128 seasonal Sentinel-2 mosaics + masks + lat/lon.

Read without TensorFlow: the ``tfrecord`` package's ``Example`` protobuf parses each record; records are
located by scanning the length headers once (no data read) so any subset is read by seeking.

Layout assumed (ForTy v1 README, google-deepmind/forest_typology; every name is configurable through
``layout=ForTyLayout(...)`` / ``layout={...}`` because the serialised encoding is only partly documented):

==========================  =====================  ==================================================
feature                     stored as              meaning
==========================  =====================  ==================================================
``id``                      int64                  sample id (becomes part of the key)
``lat``, ``lon``            float (or float64 bytes) location in degrees
``s2``                      TFDS Tensor             (4 seasons, 128, 128, 10 bands), channels last
                            ``float32``            bands B2 B3 B4 B5 B6 B7 B8 B8A B11 B12
``segmentation_labels``     TFDS Tensor ``uint8``   (128, 128) class codes
==========================  =====================  ==================================================

Tensors are read in each of ``tfds.features.Tensor``'s encodings: ``none`` (a float/int64 list), ``bytes``
(the raw array bytes) and ``zlib`` (those bytes zlib-compressed, which TFDS recommends for large tensors).
The encoding and dtype come from TFDS's ``features.json`` beside the shards when it is there, else from the
layout's ``encoding`` (``auto``: a bytes feature with a zlib header that inflates is zlib, else raw bytes).

Files are named ``forty_v1-{split}.tfrecord-{shard:05d}-of-{n:05d}`` (split train/validation/test);
files without a split in the name form one pool split by ``split_fractions``. Classes (8, README order):
natural forest, planted forest, tree crops, other vegetation, water, ice, bare ground, built areas, plus
"unknown". Two class-code conventions are in use: the README's ``1-9`` (classes 1..8, 9 unknown) and
zero-based ``0-8`` (0..7, 8 unknown). ``class_convention='auto'`` (default) reads the labels of the first
records until a 0 (``0-8``) or a 9 (``1-9``) settles it; give ``class_convention`` (or explicit
``class_codes``/``ignore_codes``) when the data cannot tell. Unknown and 255 become ``IGNORE_INDEX``; any
other code is an error naming the record. One image per sample:
``season`` picks a mosaic by index (0..3) or, by default, the per-pixel median of the four (hemisphere-neutral).
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geodiv.bands import SATMAE_BANDS, canonical_band
from geodiv.config import StrictModel, validate_config
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import (
    IGNORE_INDEX,
    SPLIT_ALIASES,
    ReaderTask,
    TaskOptions,
    TaskSample,
    split_options,
)

FORTY_CLASSES: tuple[str, ...] = (
    "natural forest", "planted forest", "tree crops", "other vegetation", "water", "ice", "bare ground",
    "built areas",
)
_SPLIT_IN_NAME = re.compile(r"-(train|training|val|valid|validation|test)\.tfrecord", re.IGNORECASE)
#: class codes and ignore codes of each class-code convention
CONVENTIONS: dict[str, tuple[list[int], list[int]]] = {
    "0-8": (list(range(8)), [8, 255]),
    "1-9": (list(range(1, 9)), [9, 255]),
}
#: records read (at most) to tell the class-code convention
DETECT_RECORDS = 16
TFDS_FEATURES = "features.json"


class ForTyLayout(StrictModel):
    """Feature names and encodings of the ForTy TFRecords (defaults: ForTy v1 README)."""

    image_key: str = "s2"
    image_dtype: str = "float32"  # used when the image is stored as raw bytes
    seasons: int = 4
    image_bands: list[str] = list(SATMAE_BANDS)
    channels_last: bool = True  # (T, H, W, C); False: (T, C, H, W)
    label_key: str = "segmentation_labels"
    label_dtype: str = "uint8"
    lat_key: str = "lat"
    lon_key: str = "lon"
    coord_dtype: str = "float64"  # used when coordinates are stored as raw bytes
    id_key: str | None = "id"
    #: TFDS tensor encoding of bytes features (``auto``: TFDS's features.json, else zlib detected by its header)
    encoding: Literal["auto", "none", "bytes", "zlib"] = "auto"
    #: ``1-9`` (README: classes 1..8, 9 unknown), ``0-8`` (0..7, 8 unknown), or ``auto`` (from the labels)
    class_convention: Literal["auto", "0-8", "1-9"] = "auto"
    #: explicit stored code of each class in FORTY_CLASSES order (overrides class_convention)
    class_codes: list[int] | None = None
    ignore_codes: list[int] | None = None
    season: int | Literal["median"] = "median"


def detect(path: Path) -> bool:
    if path.is_file():
        return ".tfrecord" in path.name
    return path.is_dir() and any(".tfrecord" in p.name for p in path.iterdir() if p.is_file())


def record_offsets(path: Path) -> list[int]:
    """Byte offsets of the records in a TFRecord file (reads the 12-byte headers only)."""
    offsets = []
    size = path.stat().st_size
    with open(path, "rb") as fh:
        pos = 0
        while pos < size:
            header = fh.read(8)
            if len(header) != 8:
                raise DataError(f"{path}: truncated TFRecord (header at byte {pos})")
            (length,) = struct.unpack("<Q", header)
            end = pos + 12 + length + 4
            if end > size:
                raise DataError(f"{path}: truncated TFRecord (record at byte {pos} needs {length} bytes)")
            offsets.append(pos)
            pos = end
            fh.seek(pos)
    return offsets


def tfds_features(folder: Path) -> dict[str, dict[str, Any]]:
    """{feature: {"dtype", "encoding", "shape"}} from TFDS's ``features.json`` in ``folder`` ({} without one)."""
    file = folder / TFDS_FEATURES
    if not file.is_file():
        return {}
    try:
        content = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{file}: not TFDS's features JSON ({err}); remove it or fix it") from None
    feats = (content.get("content") or content.get("featuresDict") or {}).get("features", {})
    out = {}
    for name, spec in feats.items():
        tensor = spec.get("tensor") if isinstance(spec, dict) else None
        if isinstance(tensor, dict):
            out[name] = {"dtype": tensor.get("dtype"), "encoding": tensor.get("encoding", "none"),
                         "shape": [int(d) for d in (tensor.get("shape") or {}).get("dimensions", [])]}
    return out


def _looks_zlib(raw: bytes) -> bool:
    return len(raw) >= 2 and raw[0] & 0x0F == 8 and ((raw[0] << 8) | raw[1]) % 31 == 0


def decode_bytes(raw: bytes, dtype: str, encoding: str, *, key: str, where: str) -> np.ndarray:
    """A TFDS ``bytes``/``zlib`` tensor as a flat array (``auto``: zlib when it has a zlib header and inflates)."""
    if encoding == "zlib" or (encoding == "auto" and _looks_zlib(raw)):
        try:
            raw = zlib.decompress(raw)
        except zlib.error as err:
            if encoding == "zlib":
                raise DataError(f"{where}: feature {key!r} is not zlib data ({err}); set the layout's encoding "
                                "to 'bytes' if the tensor is stored uncompressed") from None
    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        raise DataError(f"{where}: feature {key!r} holds {len(raw)} bytes, not a whole number of {dtype} values; "
                        "set the layout's dtype/encoding to match the files")
    return np.frombuffer(raw, dtype=np.dtype(dtype))


def _feature_array(example: Any, key: str, raw_dtype: str, *, where: str, encoding: str = "auto") -> np.ndarray:
    feats = example.features.feature
    if key not in feats:
        raise DataError(f"{where}: feature {key!r} is missing (the record has {', '.join(sorted(feats))}); "
                        "set the ForTy layout's feature names to match your files")
    feature = feats[key]
    kind = feature.WhichOneof("kind")
    if kind == "float_list":
        return np.asarray(feature.float_list.value, dtype=np.float32)
    if kind == "int64_list":
        return np.asarray(feature.int64_list.value, dtype=np.int64)
    if kind == "bytes_list" and len(feature.bytes_list.value) == 1:
        return decode_bytes(feature.bytes_list.value[0], raw_dtype, encoding, key=key, where=where)
    raise DataError(f"{where}: feature {key!r} is empty or of an unsupported kind ({kind})")


class ForTyTask(ReaderTask):
    source = "forty"
    type = "segmentation"

    def __init__(self, path: Path, options: TaskOptions, layout: ForTyLayout, name: str | None = None) -> None:
        self.path = Path(path)
        self.layout = layout
        self.name = name or "forty"
        self.classes = list(FORTY_CLASSES)
        if layout.class_codes is not None and len(layout.class_codes) != len(FORTY_CLASSES):
            raise InputError(f"ForTy layout: class_codes needs {len(FORTY_CLASSES)} codes, got {len(layout.class_codes)}")
        self.source_bands = [canonical_band(b) for b in layout.image_bands]
        self.info = {"layout": layout.model_dump(), "season": layout.season}
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.iterdir() if ".tfrecord" in p.name)
        self._files = {p.name: p for p in files}
        self._tfds = tfds_features(self.path if self.path.is_dir() else self.path.parent)
        self._offsets: dict[str, list[int]] = {}
        codes, ignore = self._class_codes()
        lut = np.full(256, -1, dtype=np.int16)
        for i, code in enumerate(codes):
            lut[code] = i
        for code in ignore:
            lut[code] = IGNORE_INDEX
        self._codes, self._ignore, self._lut = codes, ignore, lut
        self.info.update(class_codes=codes, ignore_codes=ignore)
        super().__init__(options, source_has_location=True)

    # -- encodings and class codes ---------------------------------------------------------------------------
    def _spec(self, key: str, dtype: str) -> tuple[str, str]:
        """(dtype, encoding) of a feature: TFDS's features.json first, then the layout."""
        tf = self._tfds.get(key, {})
        return tf.get("dtype") or dtype, tf.get("encoding") if tf.get("encoding") else self.layout.encoding

    def _array(self, example: Any, key: str, dtype: str, where: str) -> np.ndarray:
        raw_dtype, encoding = self._spec(key, dtype)
        return _feature_array(example, key, raw_dtype, where=where, encoding=encoding)

    def _class_codes(self) -> tuple[list[int], list[int]]:
        lay = self.layout
        if lay.class_codes is not None:
            self.info["class_convention"] = "explicit class_codes"
            return list(lay.class_codes), list(lay.ignore_codes if lay.ignore_codes is not None else [255])
        convention = lay.class_convention
        if convention == "auto":
            convention = self._detect_convention()
            self.info["class_convention"] = f"{convention} (detected from the labels)"
        else:
            self.info["class_convention"] = convention
        codes, ignore = CONVENTIONS[convention]
        return list(codes), list(lay.ignore_codes if lay.ignore_codes is not None else ignore)

    def _detect_convention(self) -> str:
        """``0-8`` when a label 0 appears, ``1-9`` when a 9 does, in the first ``DETECT_RECORDS`` records."""
        seen: set[int] = set()
        n = 0
        for name, path in self._files.items():
            for i in range(len(self._offsets_of(name))):
                if n >= DETECT_RECORDS:
                    break
                example, where = self._example(name, i)
                codes = self._array(example, self.layout.label_key, self.layout.label_dtype, where)
                seen.update(int(c) for c in np.unique(codes))
                n += 1
                if 0 in seen and 9 in seen:
                    raise DataError(
                        f"{path}: labels hold both 0 and 9 ({sorted(seen)[:12]}), which fits neither ForTy "
                        "convention (0-8: classes 0..7, 8 unknown; 1-9: classes 1..8, 9 unknown); give "
                        "class_codes=[...] and ignore_codes=[...] for this data"
                    )
            if 0 in seen or 9 in seen:
                break
        if 0 in seen:
            return "0-8"
        if 9 in seen:
            return "1-9"
        raise InputError(
            f"{self.path}: cannot tell ForTy's class-code convention from the labels of the first {n} record(s) "
            f"(codes {sorted(seen)[:12]}: no 0 and no 9); pass class_convention='1-9' (README: classes 1..8, 9 "
            "unknown) or class_convention='0-8' (0..7, 8 unknown)"
        )

    def _offsets_of(self, name: str) -> list[int]:
        if name not in self._offsets:
            self._offsets[name] = record_offsets(self._files[name])
        return self._offsets[name]

    def _example(self, name: str, index: int) -> tuple[Any, str]:
        from tfrecord import example_pb2

        where = f"{self._files[name]}: record {index}"
        with open(self._files[name], "rb") as fh:
            fh.seek(self._offsets_of(name)[index])
            (length,) = struct.unpack("<Q", fh.read(8))
            fh.seek(4, os.SEEK_CUR)
            payload = fh.read(length)
        example = example_pb2.Example()
        try:
            example.ParseFromString(payload)
        except Exception as err:  # protobuf DecodeError
            raise DataError(f"{where}: not a tf.train.Example ({err})") from None
        return example, where

    def _list_keys(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in self._files:
            m = _SPLIT_IN_NAME.search(name)
            split = SPLIT_ALIASES[m.group(1).lower()] if m else "all"
            out.setdefault(split, []).extend(f"{name}#{i}" for i in range(len(self._offsets_of(name))))
        if "all" in out and len(out) > 1:  # mixed naming: everything becomes one pool
            out = {"all": [k for ks in out.values() for k in ks]}
        return out

    def _where(self, key: str) -> str:
        name, _, index = key.rpartition("#")
        return f"{self._files.get(name, name)}: record {index}"

    def _read(self, key: str) -> TaskSample:
        name, _, index = key.rpartition("#")
        example, where = self._example(name, int(index))
        lay = self.layout
        label = self._array(example, lay.label_key, lay.label_dtype, where)
        side = int(round(np.sqrt(label.size)))
        if side * side != label.size:
            raise DataError(f"{where}: label has {label.size} values, not a square mask (if the tensors are "
                            "TFDS-encoded, set the layout's encoding: none, bytes or zlib)")
        image = self._array(example, lay.image_key, lay.image_dtype, where)
        n_bands = len(self.source_bands)
        expected = lay.seasons * side * side * n_bands
        if image.size != expected:
            raise DataError(
                f"{where}: {lay.image_key!r} has {image.size} values; expected {lay.seasons} seasons x {side} x "
                f"{side} x {n_bands} bands = {expected} (check the layout's seasons/image_bands)"
            )
        if lay.channels_last:
            image = image.reshape(lay.seasons, side, side, n_bands).transpose(0, 3, 1, 2)
        else:
            image = image.reshape(lay.seasons, n_bands, side, side)
        if lay.season == "median":
            image = np.median(image, axis=0).astype(np.float32)
        else:
            if not 0 <= lay.season < lay.seasons:
                raise InputError(f"ForTy season {lay.season} is out of range 0..{lay.seasons - 1}")
            image = np.ascontiguousarray(image[lay.season], dtype=np.float32)
        codes = label.reshape(side, side).astype(np.int64)
        in_range = (codes >= 0) & (codes <= 255)
        mapped = np.where(in_range, self._lut[np.clip(codes, 0, 255)], -1)
        if (mapped < 0).any():
            bad = np.unique(codes[mapped < 0]).tolist()
            raise DataError(
                f"{where}: label code(s) {bad[:5]} are outside the class-code convention "
                f"{self.info['class_convention']} (classes {self._codes}, ignored {self._ignore}); set "
                "class_convention ('0-8' or '1-9') or class_codes/ignore_codes in the ForTy layout"
            )
        mask = mapped.astype(np.uint8)
        lat = float(self._array(example, lay.lat_key, lay.coord_dtype, where).reshape(-1)[0])
        lon = float(self._array(example, lay.lon_key, lay.coord_dtype, where).reshape(-1)[0])
        return TaskSample(key=key, image=image, label=mask, lat=lat, lon=lon)


def load(spec: str | os.PathLike[str], **options: Any) -> ForTyTask:
    common, extra = split_options(options)
    layout = extra.pop("layout", None)
    name = extra.pop("name", None)
    layout_fields = {k: extra.pop(k) for k in list(extra) if k in ForTyLayout.model_fields}
    if extra:
        raise InputError(f"unknown option(s) for ForTy: {', '.join(sorted(extra))} (known: layout, name, {', '.join(ForTyLayout.model_fields)})")
    if isinstance(layout, ForTyLayout):
        layout = layout.model_dump()
    layout = validate_config(ForTyLayout, {**(layout or {}), **layout_fields}, "ForTy layout")
    return ForTyTask(Path(spec), common, layout, name=name)
