"""GEO-Bench v1 task folders: one HDF5 file per sample, partition JSON files, pickled metadata.

Layout (geobench 1.0.0, ``geobench/dataset.py`` and ``geobench/task.py``)::

    m-eurosat/
      task_specs.pkl                 # pickled TaskSpecifications: bands_info, label_type, patch_size ...
      band_stats.json                # {band name: {mean, std, min, max, median, percentile_*}}
      default_partition.json         # {"train": [names], "valid": [...], "test": [...]} (often a symlink)
      0.01x_train_partition.json ... # few-shot partitions (train subsets; valid/test unchanged)
      <sample_name>.hdf5             # one dataset per band (e.g. "02 - Blue"), segmentation mask "label";
                                     # file attribute "pickle" = str(pickle.dumps({band: {band_info, date,
                                     # transform, crs, ...}, "bands_order": [...], "label": ...}))

Every pickle is read with :mod:`._unpickle` (plain data only). Band mapping: ``Sentinel2`` bands via
``geodiv.bands.canonical_band``; ``Landsat8`` bands to the Sentinel-2 band of the same spectral range
(2->B2, 3->B3, 4->B4, 5 (NIR)->B8A, 6->B11, 7->B12); plain RGB(N) bands by colour (red->B4, green->B3,
blue->B2, nir->B8); Sentinel-1, elevation, cloud and hyperspectral bands are dropped (``info['dropped_bands']``).
v1 files carry no coordinates: ``has_location`` is False unless ``locations=ids.csv`` is given.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.bands import canonical_band
from geodiv.errors import DataError, InputError
from geodiv.evaluate.sources._raster import resample, stack_bands
from geodiv.evaluate.sources._unpickle import PickledRecord, pickle_bytes_from_attr, safe_loads
from geodiv.evaluate.tasks import SourceTask, TaskOptions, TaskSample, canonical_split, split_options

LABEL_TYPES = {
    "Classification": "classification",
    "MultiLabelClassification": "multilabel",
    "SegmentationClasses": "segmentation",
    "SemanticSegmentation": "segmentation",
    "Regression": "regression",
}
LANDSAT_TO_S2 = {2: "B2", 3: "B3", 4: "B4", 5: "B8A", 6: "B11", 7: "B12"}
COLOUR_TO_S2 = {"red": "B4", "green": "B3", "blue": "B2", "nir": "B8"}
PARTITION_SUFFIX = "_partition.json"


def detect(path: Path) -> bool:
    return path.is_dir() and ((path / "task_specs.pkl").is_file() or any(path.glob("*" + PARTITION_SUFFIX)))


def _s2_name(info: Any) -> str | None:
    """The Sentinel-2 band a GEO-Bench band description maps to, or None (dropped)."""
    if not isinstance(info, PickledRecord):
        return None
    kind = info.type_name
    name = str(getattr(info, "name", "") or "")
    if kind == "Sentinel2":
        return canonical_band(name)
    if kind == "Landsat8":
        m = re.match(r"^\s*0*(\d+)", name)
        return LANDSAT_TO_S2.get(int(m.group(1))) if m else None
    if kind == "SpectralBand":
        names = [name, *(getattr(info, "alt_names", ()) or ())]
        for n in names:
            key = str(n).strip().lower()
            if key in COLOUR_TO_S2:
                return COLOUR_TO_S2[key]
    return None


class GeoBenchTask(SourceTask):
    source = "geobench"

    def __init__(self, path: Path, options: TaskOptions, partition: str | None = None) -> None:
        self.path = Path(path)
        self.info = {}
        specs_file = self.path / "task_specs.pkl"
        if not specs_file.is_file():
            raise DataError(
                f"{self.path} is not a complete GEO-Bench task folder: task_specs.pkl is missing "
                "(download the task again with geobench-download)"
            )
        specs = safe_loads(specs_file.read_bytes(), what=str(specs_file))
        self.name = str(getattr(specs, "dataset_name", None) or self.path.name)
        label_type = getattr(specs, "label_type", None)
        kind = label_type.type_name if isinstance(label_type, PickledRecord) else type(label_type).__name__
        if kind not in LABEL_TYPES:
            raise DataError(f"{specs_file}: unsupported label type {kind!r}; geodiv reads {', '.join(LABEL_TYPES)}")
        self.type = LABEL_TYPES[kind]
        self.classes = self._class_names(label_type)
        self._band_names: list[str] = []  # GEO-Bench names of the kept bands, in source_bands order
        source_bands: list[str] = []
        dropped: list[str] = []
        for info in getattr(specs, "bands_info", []) or []:
            s2 = _s2_name(info)
            raw = str(getattr(info, "name", info))
            if s2 is None or s2 in source_bands:
                dropped.append(raw)
                continue
            source_bands.append(s2)
            self._band_names.append(raw)
        if not source_bands:
            raise DataError(f"{specs_file}: none of the task's bands ({', '.join(dropped)}) maps to a Sentinel-2 band")
        self.source_bands = source_bands
        self.info.update(
            dropped_bands=dropped,
            band_names=dict(zip(source_bands, self._band_names)),
            band_stats=self._band_stats(),
            patch_size=getattr(specs, "patch_size", None),
        )
        self._partition = self._choose_partition(partition, options)
        super().__init__(options, source_has_location=False)

    # -- metadata ------------------------------------------------------------------------------------------
    def _class_names(self, label_type: Any) -> list[str] | None:
        if self.type == "regression":
            return None
        names = getattr(label_type, "_class_names", None) or getattr(label_type, "class_name", None)
        n = getattr(label_type, "n_classes", None)
        if names is None:
            if n is None:
                raise DataError(f"{self.path / 'task_specs.pkl'}: label type gives neither class names nor n_classes")
            return [str(i) for i in range(int(n))]
        return [str(c) for c in names]

    def _band_stats(self) -> dict[str, dict[str, float]]:
        file = self.path / "band_stats.json"
        if not file.is_file():
            return {}
        try:
            stats = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise DataError(f"{file}: not valid JSON ({err})") from None
        out = {}
        for s2, raw in zip(self.source_bands, self._band_names):
            if raw in stats:
                out[s2] = {k: float(v) for k, v in stats[raw].items() if isinstance(v, (int, float))}
        return out

    def partitions(self) -> list[str]:
        return sorted(p.name[: -len(PARTITION_SUFFIX)] for p in self.path.glob("*" + PARTITION_SUFFIX))

    def _choose_partition(self, partition: str | None, options: TaskOptions) -> str | None:
        available = self.partitions()
        if options.resplit:
            return None
        if partition is None and options.train_fraction is not None:
            for name in available:
                m = re.match(r"^(\d+(?:\.\d+)?)x_train$", name)
                if m and abs(float(m.group(1)) - options.train_fraction) < 1e-9:
                    partition = name
                    self._native_few_shot = True
                    break
        partition = partition or ("default" if "default" in available else "original" if "original" in available else None)
        if partition is None or partition not in available:
            wanted = f"{partition}{PARTITION_SUFFIX}" if partition else f"default{PARTITION_SUFFIX}"
            raise DataError(
                f"{self.path}: partition file {wanted} is missing (found: "
                f"{', '.join(p + PARTITION_SUFFIX for p in available) or 'none'}). Restore it from the GEO-Bench "
                "download, choose another with partition=NAME, or split randomly with resplit=True."
            )
        self.info["partition"] = partition
        return partition

    def _few_shot_native(self) -> bool:
        return getattr(self, "_native_few_shot", False)

    # -- keys ----------------------------------------------------------------------------------------------
    def _list_keys(self) -> dict[str, list[str]]:
        if self._partition is None:
            return {"all": sorted(p.stem for p in self.path.glob("*.hdf5"))}
        file = self.path / f"{self._partition}{PARTITION_SUFFIX}"
        try:
            content = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise DataError(f"{file}: not valid JSON ({err})") from None
        if not isinstance(content, dict):
            raise DataError(f"{file}: expected a mapping of split name -> sample names")
        out: dict[str, list[str]] = {}
        for split, names in content.items():
            try:
                name = canonical_split(split)
            except InputError:
                raise DataError(f"{file}: unknown split {split!r} (GEO-Bench uses train, valid, test)") from None
            out[name] = [str(n) for n in names]
            missing = [n for n in out[name] if not (self.path / f"{n}.hdf5").is_file()]
            if missing:
                raise DataError(
                    f"{file}: split {split!r} lists {len(missing)} sample(s) without a file, e.g. "
                    f"{self.path / (missing[0] + '.hdf5')}; the download is incomplete"
                )
        return out

    def _where(self, key: str) -> str:
        return str(self.path / f"{key}.hdf5")

    # -- samples -------------------------------------------------------------------------------------------
    def _read(self, key: str) -> TaskSample:
        import h5py

        file = self.path / f"{key}.hdf5"
        where = str(file)
        try:
            with h5py.File(file, "r") as fp:
                if "pickle" not in fp.attrs:
                    raise DataError(f"{where}: no 'pickle' metadata attribute; not a GEO-Bench sample file")
                attrs = safe_loads(pickle_bytes_from_attr(fp.attrs["pickle"], what=where), what=where)
                if not isinstance(attrs, dict):
                    raise DataError(f"{where}: metadata is a {type(attrs).__name__}, expected a dict")
                by_name = self._descriptors(fp, attrs)
                bands = []
                for raw in self._band_names:
                    if raw not in by_name:
                        raise DataError(f"{where}: band {raw!r} is missing (the file has {', '.join(by_name)})")
                    data = np.asarray(fp[by_name[raw]])
                    bands.append(data[..., 0] if data.ndim == 3 and data.shape[-1] == 1 else data)
                image = stack_bands(bands, where=where)
                if self.type == "segmentation":
                    if "label" not in by_name:
                        raise DataError(f"{where}: segmentation sample without a 'label' band")
                    label = np.asarray(fp[by_name["label"]])
                    label = resample(label.squeeze(), image.shape[1:], order=0)
                else:
                    if "label" not in attrs:
                        raise DataError(f"{where}: no label in the sample metadata")
                    label = attrs["label"]
        except OSError as err:
            raise DataError(f"{where}: cannot read HDF5 file ({err})") from None
        return TaskSample(key=key, image=image, label=label)

    @staticmethod
    def _descriptors(fp: Any, attrs: dict) -> dict[str, str]:
        """GEO-Bench band name -> HDF5 dataset name (descriptors carry a date suffix in time series)."""
        out: dict[str, str] = {}
        for desc in attrs.get("bands_order") or list(fp.keys()):
            meta = attrs.get(desc)
            info = meta.get("band_info") if isinstance(meta, dict) else None
            name = str(getattr(info, "name", desc)) if isinstance(info, PickledRecord) else desc
            if desc in fp:
                out.setdefault(name, desc)
        return out


def load(spec: str | os.PathLike[str], **options: Any) -> GeoBenchTask:
    common, extra = split_options(options)
    partition = extra.pop("partition", None)
    if extra:
        raise InputError(f"unknown option(s) for a GEO-Bench task: {', '.join(sorted(extra))} (known: partition)")
    return GeoBenchTask(Path(spec), common, partition=partition)
