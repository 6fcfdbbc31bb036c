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
Locations: files written by geobench 1.0.0 keep each band's ``transform`` (an ``affine.Affine``) and ``crs``
(a ``rasterio.crs.CRS``); the centre of the first kept band's grid, reprojected to WGS84, is the sample's
lat/lon, so per-continent evaluation works. Tasks whose files carry no georeference (older conversions, the
``ccb`` pickles) have ``has_location`` False and ``info['location']`` says so; give ``locations=ids.csv``
(columns id,lat,lon, id = sample name) to place them.

m-eurosat: GEO-Bench's converter labels the 13 channels of the EuroSAT-MS GeoTIFFs in standard Sentinel-2
order, but the files store B1..B12 then B8A (ServiceNow/geo-bench issue 28; phelber/EuroSAT issue 7). So
the band GEO-Bench calls "08A" holds B9, "09" holds B10, "10" holds B11, "11" holds B12 and "12" holds B8A.
``band_remap='eurosat'`` relabels them to the true bands; ``band_remap='none'`` keeps GEO-Bench's labels
(what published GEO-Bench numbers used). Without the option, m-eurosat keeps GEO-Bench's labels and warns.

m-brick-kiln: the same converter labels its 13 channels as the standard Sentinel-2 bands, but the source images
hold B1-B5, B7, B8A, B8, B11, B12 and then the red, green and blue of the 8-bit true-colour product (geo-bench
issue 29, from the export code of mliu356/kiln-scaling). ``band_remap='brick-kiln'`` relabels the ten bands
(GEO-Bench's "06" holds B7, "07" B8A, "08A" B11, "09" B12) and drops the three true-colour channels ("10", "11",
"12"), so B6, B9 and B10 are missing and filled like any missing band. Without the option it keeps GEO-Bench's
labels and warns.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.bands import BRICK_KILN_CHANNELS, EUROSAT_MS_BANDS, S2_BANDS, canonical_band
from geodiv.data.sources.geotiff import centre_lat_lon
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks._raster import resample_band, stack_bands
from geodiv.evaluate.tasks._unpickle import PickledRecord, pickle_bytes_from_attr, safe_loads
from geodiv.evaluate.tasks.base import ReaderTask, TaskOptions, TaskSample, canonical_split, split_options

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
#: ``band_remap`` values: GEO-Bench's Sentinel-2 label -> the band the channel really holds (None: no band,
#: the channel is dropped).
BAND_REMAPS: dict[str, dict[str, str | None]] = {
    "none": {},
    "eurosat": {s: e for s, e in zip(S2_BANDS, EUROSAT_MS_BANDS) if s != e},
    "brick-kiln": {s: c for s, c in zip(S2_BANDS, BRICK_KILN_CHANNELS) if s != c},
}
#: Tasks known to carry an upstream band mislabelling, the remap that undoes it, and what the pixels hold.
MISLABELLED = {"m-eurosat": "eurosat", "m-brick-kiln": "brick-kiln"}
_TRUE_ORDER = {
    "eurosat": "EuroSAT-MS order (B1..B12, B8A; geo-bench issue 28)",
    "brick-kiln": "the order the brick-kiln source exported (B1-B5, B7, B8A, B8, B11, B12, then three 8-bit "
                  "true-colour channels; geo-bench issue 29)",
}


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


class GeoBenchTask(ReaderTask):
    source = "geobench"

    def __init__(self, path: Path, options: TaskOptions, partition: str | None = None,
                 band_remap: str | None = None) -> None:
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
        if band_remap is not None and band_remap not in BAND_REMAPS:
            raise InputError(f"{self.path}: band_remap must be one of {', '.join(BAND_REMAPS)}, got {band_remap!r}")
        if band_remap is None and self.name in MISLABELLED:
            warnings.warn(
                f"{self.path}: GEO-Bench's {self.name} labels its bands in standard Sentinel-2 order but the pixels "
                f"are in {_TRUE_ORDER[MISLABELLED[self.name]]}; keeping GEO-Bench's labels. Pass "
                f"band_remap='{MISLABELLED[self.name]}' for the true bands or band_remap='none' to silence this.",
                stacklevel=3,
            )
        remap = BAND_REMAPS[band_remap or "none"]
        self.info["band_remap"] = band_remap or "none"
        self._band_names: list[str] = []  # GEO-Bench names of the kept bands, in source_bands order
        source_bands: list[str] = []
        dropped: list[str] = []
        for info in getattr(specs, "bands_info", []) or []:
            s2 = _s2_name(info)
            if s2 is not None and isinstance(info, PickledRecord) and info.type_name == "Sentinel2":
                s2 = remap.get(s2, s2)
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
        georeferenced = self._first_sample_georeferenced()
        self.info["location"] = (
            "band transform + CRS of each sample file" if georeferenced else
            "none: the sample files carry no band transform/CRS; pass locations=ids.csv (id,lat,lon)"
        )
        super().__init__(options, source_has_location=georeferenced)

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

    def _first_sample_georeferenced(self) -> bool:
        """Whether the task's files carry a band transform and CRS (judged on the first sample file)."""
        import h5py

        first = next(iter(sorted(self.path.glob("*.hdf5"))), None)
        if first is None:
            return False
        try:
            with h5py.File(first, "r") as fp:
                if "pickle" not in fp.attrs:
                    return False
                attrs = safe_loads(pickle_bytes_from_attr(fp.attrs["pickle"], what=str(first)), what=str(first))
        except OSError:
            return False
        return isinstance(attrs, dict) and self._georeference(attrs) is not None

    def _georeference(self, attrs: dict) -> tuple[Any, str, int] | None:
        """(transform, CRS as text, index of that band in the kept bands) of the first kept band with both."""
        by_info = {}
        for desc in attrs.get("bands_order") or []:
            meta = attrs.get(desc)
            if isinstance(meta, dict):
                info = meta.get("band_info")
                by_info.setdefault(str(getattr(info, "name", desc)) if isinstance(info, PickledRecord) else desc, meta)
        for i, raw in enumerate(self._band_names):
            meta = by_info.get(raw)
            if meta is None:
                continue
            transform, crs = _affine(meta.get("transform")), _crs_text(meta.get("crs"))
            if transform is not None and crs is not None:
                return transform, crs, i
        return None

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
                lat = lon = None
                georef = self._georeference(attrs)
                if georef is not None:
                    # the transform is for that band's own (possibly coarser) raster: its centre is the sample's
                    height, width = bands[georef[2]].shape[:2]
                    lat, lon = centre_lat_lon(georef[0], georef[1], width, height)
                if self.type == "segmentation":
                    if "label" not in by_name:
                        raise DataError(f"{where}: segmentation sample without a 'label' band")
                    label = np.asarray(fp[by_name["label"]])
                    label = resample_band(label.squeeze(), image.shape[1:], order=0)
                else:
                    if "label" not in attrs:
                        raise DataError(f"{where}: no label in the sample metadata")
                    label = attrs["label"]
        except OSError as err:
            raise DataError(f"{where}: cannot read HDF5 file ({err})") from None
        return TaskSample(key=key, image=image, label=label, lat=lat, lon=lon)

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


class _Affine:
    """The six coefficients of an affine transform (what ``centre_lat_lon`` reads)."""

    def __init__(self, a: float, b: float, c: float, d: float, e: float, f: float) -> None:
        self.a, self.b, self.c, self.d, self.e, self.f = a, b, c, d, e, f


def _affine(value: Any) -> _Affine | None:
    """A pickled ``affine.Affine`` (args or state a..f), or a 6/9-number sequence, as an ``_Affine``."""
    coeffs: Any = None
    if isinstance(value, PickledRecord):
        state = value.__dict__.get("_state")
        if isinstance(state, dict) and all(k in state for k in "abcdef"):
            coeffs = [state[k] for k in "abcdef"]
        else:
            coeffs = value.__dict__.get("_args")
    elif isinstance(value, (list, tuple, np.ndarray)):
        coeffs = value
    try:
        nums = [float(v) for v in coeffs][:6] if coeffs is not None else []
    except (TypeError, ValueError):
        return None
    return _Affine(*nums) if len(nums) == 6 and all(np.isfinite(nums)) else None


def _crs_text(value: Any) -> str | None:
    """WKT / 'EPSG:n' of a pickled ``rasterio.crs.CRS`` (its state is the WKT, or a dict with it)."""
    if isinstance(value, PickledRecord):
        state = value.__dict__.get("_state")
        if isinstance(state, dict):
            state = state.get("wkt") or state.get("_wkt") or state.get("init")
        if not state and value.__dict__.get("_args"):
            state = value.__dict__["_args"][0]
        value = state
    return str(value) if isinstance(value, str) and value.strip() else None


def load(spec: str | os.PathLike[str], **options: Any) -> GeoBenchTask:
    common, extra = split_options(options)
    partition = extra.pop("partition", None)
    band_remap = extra.pop("band_remap", None)
    if extra:
        raise InputError(f"unknown option(s) for a GEO-Bench task: {', '.join(sorted(extra))} "
                         "(known: partition, band_remap)")
    return GeoBenchTask(Path(spec), common, partition=partition, band_remap=band_remap)
