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
``s2``                      float list, or raw      (4 seasons, 128, 128, 10 bands), channels last
                            bytes of ``float32``   bands B2 B3 B4 B5 B6 B7 B8 B8A B11 B12
``segmentation_labels``     int64 list, or raw      (128, 128) class codes
                            bytes of ``uint8``
==========================  =====================  ==================================================

Files are named ``forty_v1-{split}.tfrecord-{shard:05d}-of-{n:05d}`` (split train/validation/test);
files without a split in the name form one pool split by ``split_fractions``. Classes (8, README order):
natural forest, planted forest, tree crops, other vegetation, water, ice, bare ground, built areas;
stored codes 0..7 by default, code 8 ("unknown") and 255 become ``IGNORE_INDEX``. One image per sample:
``season`` picks a mosaic by index (0..3) or, by default, the per-pixel median of the four (hemisphere-neutral).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geodiv.bands import SATMAE_BANDS, canonical_band
from geodiv.config import StrictModel, validate_config
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks import (
    IGNORE_INDEX,
    SPLIT_ALIASES,
    SourceTask,
    TaskOptions,
    TaskSample,
    split_options,
)

FORTY_CLASSES: tuple[str, ...] = (
    "natural forest", "planted forest", "tree crops", "other vegetation", "water", "ice", "bare ground",
    "built areas",
)
_SPLIT_IN_NAME = re.compile(r"-(train|training|val|valid|validation|test)\.tfrecord", re.IGNORECASE)


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
    #: stored label code of each class in FORTY_CLASSES order; codes in ignore_codes are not scored
    class_codes: list[int] = list(range(8))
    ignore_codes: list[int] = [8, 255]
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


def _feature_array(example: Any, key: str, raw_dtype: str, *, where: str) -> np.ndarray:
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
        return np.frombuffer(feature.bytes_list.value[0], dtype=np.dtype(raw_dtype))
    raise DataError(f"{where}: feature {key!r} is empty or of an unsupported kind ({kind})")


class ForTyTask(SourceTask):
    source = "forty"
    type = "segmentation"

    def __init__(self, path: Path, options: TaskOptions, layout: ForTyLayout, name: str | None = None) -> None:
        self.path = Path(path)
        self.layout = layout
        self.name = name or "forty"
        self.classes = list(FORTY_CLASSES)
        if len(layout.class_codes) != len(FORTY_CLASSES):
            raise InputError(f"ForTy layout: class_codes needs {len(FORTY_CLASSES)} codes, got {len(layout.class_codes)}")
        self.source_bands = [canonical_band(b) for b in layout.image_bands]
        self.info = {"layout": layout.model_dump(), "season": layout.season}
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.iterdir() if ".tfrecord" in p.name)
        self._files = {p.name: p for p in files}
        lut = np.full(256, -1, dtype=np.int16)
        for i, code in enumerate(layout.class_codes):
            lut[code] = i
        for code in layout.ignore_codes:
            lut[code] = IGNORE_INDEX
        self._lut = lut
        self._offsets: dict[str, list[int]] = {}
        super().__init__(options, source_has_location=True)

    def _list_keys(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, path in self._files.items():
            m = _SPLIT_IN_NAME.search(name)
            split = SPLIT_ALIASES[m.group(1).lower()] if m else "all"
            self._offsets[name] = record_offsets(path)
            out.setdefault(split, []).extend(f"{name}#{i}" for i in range(len(self._offsets[name])))
        if "all" in out and len(out) > 1:  # mixed naming: everything becomes one pool
            out = {"all": [k for ks in out.values() for k in ks]}
        return out

    def _where(self, key: str) -> str:
        name, _, index = key.rpartition("#")
        return f"{self._files.get(name, name)}: record {index}"

    def _read(self, key: str) -> TaskSample:
        from tfrecord import example_pb2

        name, _, index = key.rpartition("#")
        where = self._where(key)
        if name not in self._offsets:
            self._offsets[name] = record_offsets(self._files[name])
        with open(self._files[name], "rb") as fh:
            fh.seek(self._offsets[name][int(index)])
            (length,) = struct.unpack("<Q", fh.read(8))
            fh.seek(4, os.SEEK_CUR)
            payload = fh.read(length)
        example = example_pb2.Example()
        try:
            example.ParseFromString(payload)
        except Exception as err:  # protobuf DecodeError
            raise DataError(f"{where}: not a tf.train.Example ({err})") from None
        lay = self.layout
        label = _feature_array(example, lay.label_key, lay.label_dtype, where=where)
        side = int(round(np.sqrt(label.size)))
        if side * side != label.size:
            raise DataError(f"{where}: label has {label.size} values, not a square mask")
        image = _feature_array(example, lay.image_key, lay.image_dtype, where=where)
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
                f"{where}: label code(s) {bad[:5]} are neither class codes {lay.class_codes} nor ignore "
                f"codes {lay.ignore_codes}; set class_codes/ignore_codes in the ForTy layout"
            )
        mask = mapped.astype(np.uint8)
        lat = float(_feature_array(example, lay.lat_key, lay.coord_dtype, where=where).reshape(-1)[0])
        lon = float(_feature_array(example, lay.lon_key, lay.coord_dtype, where=where).reshape(-1)[0])
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
