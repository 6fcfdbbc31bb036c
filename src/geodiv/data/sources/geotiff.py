"""GeoTIFF sources: a folder of GeoTIFFs, or a CSV/Parquet manifest listing them.

Band names come from the file's band descriptions (``B02``, ``B8A``, ``08A - Vegetation Red Edge`` ... mapped
with ``geodiv.bands.canonical_band``), else from ``band_names`` in the config, else a 13-band file is taken to be
in the standard Sentinel-2 order, with a warning, unless it sits in EuroSAT-MS's layout
(``<Class>/<Class>_<n>.tif`` with one of EuroSAT's ten classes), whose files hold B1..B12 then B8A
(:func:`undescribed_13_band_order`). Bands are picked by name into the dataset's order. Locations come from the
manifest's ``lat``/``lon`` columns, else from the georeference (the raster centre transformed to WGS84); a file with
neither is an error. Images larger than the dataset size are centre-cropped with a windowed read.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from geodiv.bands import EUROSAT_MS_BANDS, S2_BANDS, SATMAE_BANDS, band_indices, canonical_band
from geodiv.config import StrictModel
from geodiv.data.catalog import latlon_columns, make_catalog, row_meta
from geodiv.data.shard_format import Sample, to_uint16
from geodiv.errors import DataError, GeodivError, InputError

TIFF_SUFFIXES = (".tif", ".tiff")
#: EuroSAT's ten classes: its files are ``<Class>/<Class>_<n>.tif``
EUROSAT_CLASSES: tuple[str, ...] = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                                    "PermanentCrop", "Residential", "River", "SeaLake")
#: named band orders of 13-band files without band descriptions (the ``band_order`` option)
BAND_ORDERS: dict[str, tuple[str, ...]] = {"standard": S2_BANDS, "eurosat": EUROSAT_MS_BANDS}
_WARNED: set[tuple[str, str]] = set()


def is_eurosat_ms_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` sits in EuroSAT-MS's layout: ``<Class>/<Class>_<n>.tif`` with a EuroSAT class."""
    p = Path(path)
    m = re.fullmatch(r"([A-Za-z]+)_\d+", p.stem)
    return bool(m) and m.group(1) in EUROSAT_CLASSES and p.parent.name == m.group(1)


def named_band_order(order: str | Sequence[str], count: int, where: str) -> list[str]:
    """A ``band_order`` option (a name in ``BAND_ORDERS`` or a list of bands) for a file of ``count`` bands."""
    if isinstance(order, str):
        if order not in BAND_ORDERS:
            raise InputError(f"{where}: band_order {order!r} is not one of {', '.join(BAND_ORDERS)} (or a list of bands)")
        names = list(BAND_ORDERS[order])
    else:
        names = [canonical_band(b) for b in order]
    if len(names) != count:
        raise InputError(f"{where}: band_order names {len(names)} bands but the file has {count}")
    return names


def undescribed_13_band_order(path: str | os.PathLike[str], where: str) -> list[str]:
    """Band names of a 13-band file without band descriptions: EuroSAT-MS order when the file sits in EuroSAT's
    layout, else the standard order; either way a warning (once per folder) says which and how to change it."""
    eurosat = is_eurosat_ms_file(path)
    key = (str(Path(path).parent.parent if eurosat else Path(path).parent), str(eurosat))
    if key not in _WARNED:
        _WARNED.add(key)
        if eurosat:
            warnings.warn(f"{where}: {Path(path).name} sits in EuroSAT-MS's layout (<Class>/<Class>_<n>.tif) and its 13 "
                          "bands have no descriptions: read in EuroSAT-MS order B1..B12, B8A. Pass "
                          "band_order='standard' if the files are not EuroSAT's.", stacklevel=3)
        else:
            warnings.warn(f"{where}: 13 bands without descriptions in {path}: assuming the standard order (B8A after "
                          "B8). EuroSAT-MS files hold B1..B12 then B8A: pass band_order='eurosat' for those, or "
                          "band_order='standard' to confirm.", stacklevel=3)
    return list(EUROSAT_MS_BANDS if eurosat else S2_BANDS)


class GeoTiffSourceConfig(StrictModel):
    kind: Literal["geotiff"] = "geotiff"
    #: folder scanned recursively for *.tif / *.tiff
    root: str | None = None
    #: CSV or Parquet with a path column (relative to the manifest's folder) and optional label, lat, lon, date
    manifest: str | None = None
    path_column: str = "path"
    #: names of the file's bands, in file order, for files without band descriptions
    band_names: list[str] | None = None
    #: multiply pixel values by this before storing as uint16 (e.g. 10000 for reflectance stored as 0..1 floats)
    scale: float = 1.0
    #: named order of 13-band files without descriptions: ``standard`` or ``eurosat`` (B1..B12, B8A); sets band_names
    band_order: Literal["standard", "eurosat"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _band_order_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("band_order") is not None:
            named = list(BAND_ORDERS.get(data["band_order"], ()))
            if data.get("band_names") is not None and list(data["band_names"]) != named:
                raise ValueError("give band_names or band_order, not both")
            if named:
                data = {**data, "band_names": named}
        return data


#: Band orders that a task reader assumes for files without band descriptions, by band count, besides the 13 bands
#: of ``undescribed_13_band_order``: 12 is the 13 without B10 (as L2A products store them), 10 is SatMAE's ten.
GUESSED_ORDERS: dict[int, tuple[str, ...]] = {
    12: tuple(b for b in S2_BANDS if b != "B10"),
    10: SATMAE_BANDS,
}


def file_band_names(src: Any, configured: Sequence[str] | None, where: str, *, option: str = "band_names",
                    band_order: str | Sequence[str] | None = None, guess: bool = False,
                    error: type[GeodivError] = DataError) -> list[str]:
    """Canonical band names of an open rasterio dataset, in file order, by the first rule that applies:
    ``band_order`` (a named order or a list, :func:`named_band_order`); ``configured`` (the caller's option
    ``option``, which must name every band); the band descriptions when every band has one; a 13-band file's
    :func:`undescribed_13_band_order` (with a warning); with ``guess``, the ``GUESSED_ORDERS`` by band count.
    Otherwise an ``error`` that names ``option`` as the fix.

    The callers differ on purpose. A dataset build (``guess=False``, ``DataError``) reads many files from any
    source into pretraining data, where a wrong guess would pass unnoticed: a description it cannot read is an
    error, and a bad file is a ``DataError``, which the build reports and skips. A task reader (``guess=True``,
    ``InputError``) names the bands once, from the first file of a benchmark collection, whose band counts follow
    the known layouts (descriptions there are often "Band 1" ...: they fall through to the count), and a wrong
    option stops the task before anything runs.
    """
    if band_order is not None:
        return named_band_order(band_order, src.count, where)
    if configured is not None:
        if len(configured) != src.count:
            raise error(f"{where}: {option} names {len(configured)} bands but the GeoTIFF has {src.count}")
        return [canonical_band(b) for b in configured]
    desc = list(src.descriptions or ())
    if desc and all(desc):
        try:
            return [canonical_band(d) for d in desc]
        except InputError as err:
            if not guess:
                raise error(f"{where}: band description not understood ({err}); give {option}") from None
    if src.count == len(S2_BANDS):
        return undescribed_13_band_order(src.name, where)
    if guess and src.count in GUESSED_ORDERS:
        return list(GUESSED_ORDERS[src.count])
    raise error(
        f"{where}: cannot tell which Sentinel-2 bands the {src.count} channels of {src.name} are (no band "
        f"descriptions); give {option} (the file's bands in file order, e.g. ['B2', 'B3', 'B4', 'B8'])"
    )


def resolve_path(value: str, root: Path) -> Path:
    """``value`` as a file: absolute, under ``root``, or under ``root`` after dropping leading parts (so tables
    written on another machine, with its absolute paths, still resolve)."""
    p = Path(str(value))
    if p.is_absolute() and p.is_file():
        return p
    parts = p.parts[1:] if p.is_absolute() else p.parts
    for i in range(len(parts)):
        candidate = root.joinpath(*parts[i:])
        if candidate.is_file():
            return candidate
    return root / Path(*parts) if parts else root


def open_raster(path: str | os.PathLike[str], where: str) -> Any:
    """An open rasterio dataset (use it in ``with``); a file rasterio cannot open is a ``DataError``."""
    import rasterio

    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise DataError(f"{where}: cannot open ({err})") from None


def without_nodata(data: Any, where: str, fix: str) -> np.ndarray:
    """The plain array of a (possibly masked) read; nodata pixels in it are a ``DataError`` ending in ``fix``."""
    if np.ma.isMaskedArray(data):
        if data.mask.any():
            raise DataError(f"{where}: {int(data.mask.sum())} nodata pixel(s) in the window{fix}")
        data = data.data
    return data


def to_lat_lon(crs: Any, x: float, y: float) -> tuple[float | None, float | None]:
    """WGS84 latitude/longitude of the point ``(x, y)`` in ``crs``, or ``(None, None)`` where it maps to none."""
    from rasterio.warp import transform as warp_transform

    lons, lats = warp_transform(crs, "EPSG:4326", [x], [y])
    lat, lon = float(lats[0]), float(lons[0])
    if not (np.isfinite(lat) and np.isfinite(lon)):
        return None, None
    return lat, lon


def centre_lat_lon(transform: Any, crs: Any, width: int, height: int) -> tuple[float | None, float | None]:
    """WGS84 latitude/longitude of a raster's centre, or ``(None, None)`` without a georeference or where it maps to
    no valid location. ``transform``: any affine with ``a``..``f`` (rasterio's, or GEO-Bench's stored one)."""
    if crs is None or transform is None:
        return None, None
    col, row = width / 2.0, height / 2.0  # affine applied by hand: works with every affine version
    x = transform.a * col + transform.b * row + transform.c
    y = transform.d * col + transform.e * row + transform.f
    return to_lat_lon(crs, x, y)


def georef_center(src: Any, where: str) -> tuple[float, float] | None:
    """(lat, lon) of an open raster's centre from its georeference, or None when it has none (no CRS, or an
    identity transform); a georeference that maps to no valid location is a ``DataError``."""
    if src.crs is None or src.transform.is_identity:
        return None
    lat, lon = to_lat_lon(src.crs, *src.xy(src.height / 2.0, src.width / 2.0, offset="ul"))
    if lat is None or lon is None:
        raise DataError(f"{where}: georeference does not map to a valid location")
    return lat, lon


def read_raster(path: str | os.PathLike[str], *, where: str | None = None) -> tuple[np.ndarray, float | None, float | None]:
    """All bands of a GeoTIFF as (C, H, W) in its own dtype, and the centre's lat/lon if georeferenced (the task
    readers' whole-image read; :func:`read_geotiff` reads a pretraining sample's centre window)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = Path(path)
    label = where or str(path)
    if not path.is_file():
        raise DataError(f"{label}: image file {path} does not exist")
    try:
        with warnings.catch_warnings(), rasterio.open(path) as src:
            # plain (non-georeferenced) images are fine here; location then comes from the manifest
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            image = src.read()
            lat, lon = centre_lat_lon(src.transform if src.crs else None, src.crs, src.width, src.height)
    except RasterioIOError as err:
        raise DataError(f"{label}: cannot read GeoTIFF {path} ({err})") from None
    return image, lat, lon


def read_geotiff(
    path: str | os.PathLike[str],
    bands: Sequence[str],
    size: int | None,
    band_names: Sequence[str] | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """uint16 (len(bands), size, size) image (centre window) and info (lat/lon from the georeference if any)."""
    import rasterio
    from rasterio.windows import Window

    where = f"GeoTIFF {path}"
    with open_raster(path, where) as src:
        names = file_band_names(src, band_names, where)
        try:
            idx = band_indices(names, bands, where=where)
        except InputError as err:
            raise DataError(str(err)) from None
        h, w = src.height, src.width
        size = size or h
        if h < size or w < size:
            raise DataError(f"{where}: is {h} x {w} px, smaller than the dataset's {size} px")
        window = Window((w - size) // 2, (h - size) // 2, size, size)
        try:
            data = src.read([i + 1 for i in idx], window=window, masked=src.nodata is not None)
        except rasterio.errors.RasterioIOError as err:
            raise DataError(f"{where}: cannot read pixels ({err}); the file is truncated or corrupt") from None
        data = without_nodata(data, where, "; drop or fill the file")
        if scale != 1.0:
            data = data.astype(np.float64) * scale
        image = to_uint16(data, len(bands), size, where)
        center = georef_center(src, where)
    info: dict[str, Any] = {"path": str(path)}
    if center is not None:
        info["lat"], info["lon"] = center
    return image, info


def list_geotiffs(cfg: GeoTiffSourceConfig) -> Any:
    """A pandas table with ``path`` (absolute) and whatever the manifest gives (label, lat, lon, date, ...)."""
    import pandas as pd

    if (cfg.root is None) == (cfg.manifest is None):
        raise InputError("a geotiff source needs exactly one of root (a folder) or manifest (CSV/Parquet)")
    if cfg.root is not None:
        root = Path(cfg.root)
        if not root.is_dir():
            raise InputError(f"geotiff root {root} is not a folder")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in TIFF_SUFFIXES)
        if not paths:
            raise InputError(f"no .tif/.tiff files under {root}")
        return pd.DataFrame({"path": [str(p) for p in paths]})
    man = Path(cfg.manifest)
    if not man.is_file():
        raise InputError(f"geotiff manifest {man} does not exist")
    table = pd.read_parquet(man) if man.suffix.lower() in (".parquet", ".geoparquet") else pd.read_csv(man)
    if cfg.path_column not in table.columns:
        raise InputError(f"geotiff manifest {man} has no {cfg.path_column!r} column (columns: {', '.join(table.columns)})")
    table = table.rename(columns={cfg.path_column: "path"})
    table["path"] = [str(p if Path(p).is_absolute() else man.parent / p) for p in table["path"]]
    return table


def catalog_from_files(table: Any, id_prefix: str, annotate: bool = True,
                       extra: dict[str, Any] | None = None):
    """Catalog rows for files listed in ``table``; lat/lon from its columns, else from each file's georeference."""
    lat = np.full(len(table), np.nan)
    lon = np.full(len(table), np.nan)
    lat_c, lon_c = latlon_columns(table)
    if lat_c and lon_c:
        lat[:] = table[lat_c].to_numpy(dtype=np.float64)
        lon[:] = table[lon_c].to_numpy(dtype=np.float64)
    for i, path in enumerate(table["path"]):
        if np.isfinite(lat[i]) and np.isfinite(lon[i]):
            continue
        where = f"GeoTIFF {path}"
        with open_raster(path, where) as src:
            center = georef_center(src, where)
        if center is None:
            raise DataError(f"{where}: no georeference and no lat/lon given; add lat/lon columns to the manifest")
        lat[i], lon[i] = center
    ids = [f"{id_prefix}{i:07d}" for i in range(len(table))]
    columns = {c: table[c].to_numpy() for c in table.columns if c not in ("path", "date", lat_c, lon_c)}
    columns.update(extra or {})
    date = table["date"].astype(str).to_numpy() if "date" in table.columns else None
    return make_catalog(lat, lon, table["path"].to_numpy(), ids=ids, date=date, columns=columns, annotate=annotate)


def geotiff_catalog(cfg: GeoTiffSourceConfig, annotate: bool = True):
    return catalog_from_files(list_geotiffs(cfg), "tif", annotate)


class FileSamples(Sequence):
    """Samples read on demand from the files of catalog rows (a Sequence, so a resumed build can index past
    finished shards); a bad file raises ``DataError`` naming it."""

    def __init__(self, catalog: Any, bands: Sequence[str], size: int, band_names: Sequence[str] | None,
                 scale: float = 1.0, meta_columns: Sequence[str] = ()) -> None:
        self.catalog = catalog.reset_index(drop=True)
        self.bands, self.size, self.band_names, self.scale = list(bands), size, band_names, scale
        self.meta_columns = list(meta_columns)

    def __len__(self) -> int:
        return len(self.catalog)

    def subset(self, begin: int, end: int) -> FileSamples:
        return FileSamples(self.catalog.iloc[begin:end], self.bands, self.size, self.band_names, self.scale,
                           self.meta_columns)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        row = self.catalog.iloc[i]
        image, _ = read_geotiff(row["source"], self.bands, self.size, self.band_names, self.scale)
        return Sample(str(row["id"]), image, row_meta(row, self.meta_columns))

