"""BigEarthNet-S2 v1.0 patch folders and BigEarthNet v2.0 (reBEN): multi-label land cover, 12 Sentinel-2 bands.

v1.0 layout: ``ROOT/<patch>/<patch>_B01.tif ... _B09.tif, _B8A.tif, _B11.tif, _B12.tif`` (10 m bands 120 x 120,
20 m bands 60 x 60, 60 m bands 20 x 20; resampled bilinearly onto the 120 x 120 grid) and
``<patch>_labels_metadata.json`` (``labels``: CORINE level-3 names of the 43-class nomenclature,
``coordinates``, ``projection``, ``acquisition_date``). Labels: ``nomenclature=19`` (default; the
BigEarthNet-19 classes of Sumbul et al. 2021, patches with no 19-class label keep an all-zero vector) or
``43``. Location: the centre of the B02 georeference. Splits: ``train.csv``, ``val.csv``, ``test.csv``
(one patch name per line, as distributed with BigEarthNet) in ROOT or ``splits_dir``; otherwise random.
Class names and the 43 -> 19 mapping are facts of the BigEarthNet nomenclature (the bigearthnet-common
package, CDLA-Permissive-1.0, lists the same).

v2.0 (reBEN) layout: ``ROOT/metadata.parquet`` (columns ``patch_id``, ``labels`` = list of BigEarthNet-19
names, ``split`` = train/validation/test, plus ``country``, ``s1_name`` ...) and
``ROOT/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif ...`` where ``<tile>`` is the patch id without its
last two ``_`` parts (``images=`` points elsewhere). Give ROOT or the parquet file. Labels are the
19-class nomenclature (v2.0 has no 43-class labels); bands, resampling and location as in v1.0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.bands import S2_BANDS
from geodiv.data.sources.geotiff import read_raster
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks._raster import stack_bands
from geodiv.evaluate.tasks.base import (
    SPLITS,
    ReaderTask,
    TaskOptions,
    TaskSample,
    canonical_split,
    split_options,
)

#: 43-class (CORINE level 3) label -> BigEarthNet-19 label (None: not in the 19-class nomenclature).
LABELS_43_TO_19: dict[str, str | None] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Pastures": "Pastures",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation":
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}
#: Class order: the original nomenclature order (as in BigEarthNet's label_indices.json).
CLASSES_43: tuple[str, ...] = tuple(LABELS_43_TO_19)
CLASSES_19: tuple[str, ...] = tuple(dict.fromkeys(v for v in LABELS_43_TO_19.values() if v is not None))
#: File suffix of each band (S2_BANDS order without B10, which BigEarthNet L2A lacks).
BIGEARTHNET_BANDS: tuple[str, ...] = tuple(b for b in S2_BANDS if b != "B10")
_SUFFIX = {b: (f"B{int(b[1:]):02d}" if not b.endswith("A") else b) for b in BIGEARTHNET_BANDS}
_METADATA = "_labels_metadata.json"
V2_METADATA = "metadata.parquet"
V2_S2_DIR = "BigEarthNet-S2"
V2_COLUMNS = ("patch_id", "labels", "split")


def _is_patch(folder: Path) -> bool:
    return (folder / f"{folder.name}{_METADATA}").is_file()


def _is_v2_metadata(file: Path) -> bool:
    if not (file.is_file() and file.name == V2_METADATA):
        return False
    try:
        import pyarrow.parquet as pq

        names = set(pq.read_schema(file).names)
    except Exception:  # not a readable parquet file
        return False
    return all(c in names for c in V2_COLUMNS)


def detect(path: Path) -> bool:
    if _is_v2_metadata(path) or _is_v2_metadata(path / V2_METADATA):
        return True
    if not path.is_dir():
        return False
    for i, child in enumerate(sorted(path.iterdir())):
        if child.is_dir() and _is_patch(child):
            return True
        if i > 50:
            break
    return False


class BigEarthNetTask(ReaderTask):
    source = "bigearthnet"
    type = "multilabel"

    def __init__(self, path: Path, options: TaskOptions, *, nomenclature: int = 19, splits_dir: str | None = None,
                 name: str | None = None) -> None:
        if nomenclature not in (19, 43):
            raise InputError(f"BigEarthNet nomenclature must be 19 or 43, got {nomenclature}")
        self.path = Path(path)
        self.name = name or f"bigearthnet-{nomenclature}"
        self.nomenclature = nomenclature
        self.classes = list(CLASSES_19 if nomenclature == 19 else CLASSES_43)
        self._index = {c: i for i, c in enumerate(self.classes)}
        self.source_bands = list(BIGEARTHNET_BANDS)
        self.info = {"nomenclature": nomenclature, "version": getattr(self, "version", "1.0")}
        self._splits_dir = Path(splits_dir) if splits_dir else self.path
        super().__init__(options, source_has_location=True)

    def _list_keys(self) -> dict[str, list[str]]:
        patches = sorted(p.name for p in self.path.iterdir() if p.is_dir() and _is_patch(p))
        if not patches:
            raise DataError(f"{self.path}: no BigEarthNet patch folders (<patch>/<patch>{_METADATA})")
        files = {s: self._splits_dir / f"{s}.csv" for s in SPLITS}
        if not any(f.is_file() for f in files.values()):
            return {"all": patches}
        present = set(patches)
        out: dict[str, list[str]] = {}
        for split, file in files.items():
            if not file.is_file():
                continue
            names = [ln.strip().split(",")[0] for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
            missing = [n for n in names if n not in present]
            if missing:
                raise DataError(f"{file}: lists {len(missing)} patch(es) not found under {self.path}, e.g. {missing[0]!r}")
            out[split] = names
        return out

    def _where(self, key: str) -> str:
        return str(self.path / key)

    def _read(self, key: str) -> TaskSample:
        folder = self.path / key
        meta_file = folder / f"{key}{_METADATA}"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{meta_file}: cannot read the labels metadata ({err})") from None
        label = np.zeros(len(self.classes), dtype=np.float32)
        for name in meta.get("labels", []):
            if name not in LABELS_43_TO_19:
                raise DataError(f"{meta_file}: label {name!r} is not a BigEarthNet 43-class name")
            target = name if self.nomenclature == 43 else LABELS_43_TO_19[name]
            if target is not None:
                label[self._index[target]] = 1.0
        return self._with_bands(folder, key, label)

    def _with_bands(self, folder: Path, key: str, label: np.ndarray) -> TaskSample:
        """The sample of patch ``key`` in ``folder``: its 12 band files on the 10 m grid, located by B02."""
        where = str(folder)
        bands = []
        lat = lon = None
        for band in BIGEARTHNET_BANDS:
            data, b_lat, b_lon = read_raster(folder / f"{key}_{_SUFFIX[band]}.tif", where=where)
            bands.append(data[0])
            if band == "B2":
                lat, lon = b_lat, b_lon
        return TaskSample(key=key, image=stack_bands(bands, where=where), label=label, lat=lat, lon=lon)


class BigEarthNetV2Task(BigEarthNetTask):
    """BigEarthNet v2.0 (reBEN): labels and splits from ``metadata.parquet``, bands from the tile/patch tree."""

    version = "2.0"

    def __init__(self, path: Path, options: TaskOptions, *, nomenclature: int = 19, name: str | None = None,
                 images: str | None = None) -> None:
        import pandas as pd

        path = Path(path)
        root = path if path.is_dir() else path.parent
        self.metadata = path if path.is_file() else root / V2_METADATA
        if nomenclature != 19:
            raise InputError(f"{self.metadata}: BigEarthNet v2.0 labels use the 19-class nomenclature only; "
                             "drop nomenclature=43 (43-class labels exist in v1.0 only)")
        try:
            table = pd.read_parquet(self.metadata, columns=list(V2_COLUMNS))
        except Exception as err:  # pyarrow raises many types for broken files
            raise DataError(f"{self.metadata}: cannot read reBEN metadata ({type(err).__name__}: {err}); it needs "
                            f"columns {', '.join(V2_COLUMNS)}") from None
        self._labels = dict(zip(table["patch_id"].astype(str), table["labels"]))
        self._split = dict(zip(table["patch_id"].astype(str), table["split"].astype(str)))
        self._s2 = Path(images) if images else (root / V2_S2_DIR if (root / V2_S2_DIR).is_dir() else root)
        super().__init__(root, options, nomenclature=19, name=name or "bigearthnet-v2-19")
        self.info.update(metadata=str(self.metadata), images=str(self._s2))

    def _list_keys(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, split in self._split.items():
            try:
                name = canonical_split(split)
            except InputError:
                raise DataError(f"{self.metadata}: patch {key!r} has split {split!r}; reBEN uses train, "
                                "validation, test") from None
            out.setdefault(name, []).append(key)
        if not out:
            raise DataError(f"{self.metadata}: no patches")
        return out

    def _folder(self, key: str) -> Path:
        nested = self._s2 / "_".join(key.split("_")[:-2]) / key
        return nested if nested.is_dir() or not (self._s2 / key).is_dir() else self._s2 / key

    def _where(self, key: str) -> str:
        return str(self._folder(key))

    def _read(self, key: str) -> TaskSample:
        label = np.zeros(len(self.classes), dtype=np.float32)
        for name in self._labels[key]:
            name = str(name)
            target = name if name in self._index else LABELS_43_TO_19.get(name, "?")
            if target == "?":
                raise DataError(f"{self.metadata}: patch {key!r}: label {name!r} is not a BigEarthNet-19 (or "
                                "43-class) name")
            if target is not None:
                label[self._index[target]] = 1.0
        return self._with_bands(self._folder(key), key, label)


def load(spec: str | os.PathLike[str], **options: Any) -> BigEarthNetTask:
    common, extra = split_options(options)
    path = Path(spec)
    if _is_v2_metadata(path) or _is_v2_metadata(path / V2_METADATA):
        known = {"nomenclature", "name", "images"}
        version = "v2.0 (reBEN)"
    else:
        known = {"nomenclature", "splits_dir", "name"}
        version = "v1.0"
    if set(extra) - known:
        raise InputError(f"unknown option(s) for BigEarthNet {version}: {', '.join(sorted(set(extra) - known))} "
                         f"(known: {', '.join(sorted(known))})")
    if version == "v1.0":
        return BigEarthNetTask(path, common, **extra)
    return BigEarthNetV2Task(path, common, **extra)
