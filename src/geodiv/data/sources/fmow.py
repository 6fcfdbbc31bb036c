"""fMoW-Sentinel as SatMAE reads it: a CSV (``category, location_id, image_id, timestamp`` and optionally
``polygon`` and ``image_path``) and one 13-band Sentinel-2 GeoTIFF per row (standard band order, no band
descriptions).

Image paths (one rule for the data and evaluate stages, :func:`fmow_image_paths`): with an ``image_path``
column, each path is re-rooted under ``root`` (default: the CSV's folder) by dropping the leading parts that
do not exist there (the release's CSVs hold the authors' absolute ``/atlas/u/...`` paths); the number of parts
to drop is found on the first row and applied to all, and a row that still does not resolve is searched on
its own. Without ``image_path`` (the columns the fMoW-Sentinel README documents), the path is rebuilt as
SatMAE lays the files out: ``<split>/<category>/<category>_<location_id>/<category>_<location_id>_<image_id>.tif``
where ``<split>`` is the CSV's name (``train``, ``val``, ``test_gt``) or its canonical split name, whichever
folder exists under ``root`` (``split_dir`` overrides it).

``label`` is the index of ``category`` in :data:`FMOW_CATEGORIES` (the 62 classes, alphabetical, as SatMAE).
Locations come from each GeoTIFF's georeference; a row whose file has none falls back to the centroid of its
``polygon`` (WKT, lon/lat) when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from geodiv.bands import S2_BANDS
from geodiv.config import StrictModel
from geodiv.data.shard_format import safe_key
from geodiv.errors import DataError, InputError

FMOW_CATEGORIES: tuple[str, ...] = (
    "airport", "airport_hangar", "airport_terminal", "amusement_park", "aquaculture", "archaeological_site", "barn",
    "border_checkpoint", "burial_site", "car_dealership", "construction_site", "crop_field", "dam",
    "debris_or_rubble", "educational_institution", "electric_substation", "factory_or_powerplant", "fire_station",
    "flooded_road", "fountain", "gas_station", "golf_course", "ground_transportation_station", "helipad",
    "hospital", "impoverished_settlement", "interchange", "lake_or_pond", "lighthouse", "military_facility",
    "multi-unit_residential", "nuclear_powerplant", "office_building", "oil_or_gas_facility", "park",
    "parking_lot_or_garage", "place_of_worship", "police_station", "port", "prison", "race_track",
    "railway_bridge", "recreational_facility", "road_bridge", "runway", "shipyard", "shopping_mall",
    "single-unit_residential", "smokestack", "solar_farm", "space_facility", "stadium", "storage_tank",
    "surface_mine", "swimming_pool", "toll_booth", "tower", "tunnel_opening", "waste_disposal",
    "water_treatment_facility", "wind_farm", "zoo",
)
FMOW_COLUMNS: tuple[str, ...] = ("category", "location_id", "image_id", "timestamp")
#: the columns that name a file when ``image_path`` is absent
FMOW_ID_COLUMNS: tuple[str, ...] = ("category", "location_id", "image_id")
_SPLIT_DIRS = {"test_gt": ("test_gt", "test"), "test": ("test", "test_gt"), "validation": ("validation", "val"),
               "val": ("val", "validation")}


class FmowSourceConfig(StrictModel):
    kind: Literal["fmow"] = "fmow"
    csv: str
    #: folder that image_path is relative to (default: the CSV's folder)
    root: str | None = None
    #: folder under root holding this CSV's images when the path is rebuilt (default: from the CSV's name)
    split_dir: str | None = None


def fmow_split_dir(csv: Path, root: Path) -> str:
    """The folder under ``root`` of a split CSV's images: its name, or its other common spelling, that exists."""
    stem = csv.stem.lower()
    candidates = _SPLIT_DIRS.get(stem, (stem,))
    return next((c for c in candidates if (root / c).is_dir()), candidates[0])


def fmow_image_paths(table, csv: Path, root: Path, split_dir: str | None = None) -> list[str]:
    """The image file of each row of an fMoW-Sentinel CSV (module docstring: the one rule of both stages)."""
    from geodiv.data.sources.geotiff import resolve_path

    if "image_path" in table.columns and table["image_path"].notna().all():
        raw = [str(p) for p in table["image_path"]]
        if not raw:
            return []
        first = Path(raw[0])
        if first.is_absolute() and first.is_file():
            return raw
        parts = first.parts[1:] if first.is_absolute() else first.parts
        drop = next((i for i in range(len(parts)) if root.joinpath(*parts[i:]).is_file()), 0)
        out = []
        for text in raw:
            p = Path(text)
            rel = p.parts[1:] if p.is_absolute() else p.parts
            candidate = root.joinpath(*rel[drop:])
            out.append(str(candidate if candidate.is_file() else resolve_path(text, root)))
        return out
    missing = [c for c in FMOW_ID_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"fMoW-Sentinel CSV {csv} has no image_path and lacks {', '.join(missing)}; the image path is rebuilt "
            "from category, location_id and image_id (SatMAE's layout), so the CSV needs them or an image_path"
        )
    folder = root / (split_dir or fmow_split_dir(csv, root))
    return [
        str(folder / c / f"{c}_{loc}" / f"{c}_{loc}_{img}.tif")
        for c, loc, img in zip(table["category"].astype(str), table["location_id"], table["image_id"])
    ]


def fmow_table(cfg: FmowSourceConfig):
    """The CSV with absolute ``path``, integer ``label`` and a sanitised ``fmow_id`` column."""
    import pandas as pd

    csv = Path(cfg.csv)
    if not csv.is_file():
        raise InputError(f"fMoW-Sentinel CSV {csv} does not exist")
    table = pd.read_csv(csv)
    missing = [c for c in FMOW_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"fMoW-Sentinel CSV {csv} lacks column(s) {', '.join(missing)}; the fMoW-Sentinel README "
                        f"documents {', '.join(FMOW_COLUMNS)}, polygon (and SatMAE's CSVs add image_path)")
    base = Path(cfg.root) if cfg.root else csv.parent
    index = {c: i for i, c in enumerate(FMOW_CATEGORIES)}
    labels = []
    for row, cat in enumerate(table["category"]):
        if cat not in index:
            raise DataError(f"fMoW-Sentinel CSV {csv}, row {row}: unknown category {cat!r}")
        labels.append(index[cat])
    table["label"] = np.asarray(labels, dtype=np.int64)
    table["path"] = fmow_image_paths(table, csv, base, cfg.split_dir)
    table["date"] = table["timestamp"].astype(str)
    table["fmow_id"] = [
        safe_key(f"fmow_{c}_{loc}_{img}")
        for c, loc, img in zip(table["category"], table["location_id"], table["image_id"])
    ]
    return table


def fmow_catalog(cfg: FmowSourceConfig, annotate: bool = True):
    from geodiv.data.catalog import make_catalog
    from geodiv.data.sources.geotiff import georef_center, open_raster

    table = fmow_table(cfg)
    lat = np.empty(len(table))
    lon = np.empty(len(table))
    has_poly = "polygon" in table.columns
    for i, path in enumerate(table["path"]):
        where = f"fMoW-Sentinel image {path} (CSV row {i})"
        with open_raster(path, where) as src:
            center = georef_center(src, where)
        if center is None and has_poly and isinstance(table["polygon"].iloc[i], str):
            plat, plon = polygon_centroids([table["polygon"].iloc[i]], where=where)
            center = (float(plat[0]), float(plon[0]))
        if center is None:
            raise DataError(f"{where}: no georeference and no polygon; cannot place it")
        lat[i], lon[i] = center
    columns = {k: table[k].to_numpy() for k in ("label", "category", "location_id", "image_id")}
    return make_catalog(lat, lon, table["path"].to_numpy(), ids=table["fmow_id"].to_numpy(),
                        date=table["date"].to_numpy(), columns=columns, annotate=annotate)


#: fMoW-Sentinel files hold the 13 bands in the standard order, without descriptions.
FMOW_BANDS: tuple[str, ...] = S2_BANDS


def polygon_centroids(polygons, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of the centroids of WKT lon/lat polygons (fMoW's ``polygon`` column); a bad row is named."""
    import shapely

    wkt = np.asarray([str(p) for p in polygons], dtype=object)
    try:
        geoms = shapely.from_wkt(wkt, on_invalid="raise")
    except Exception:  # shapely raises GEOSException for unparsable WKT: find the row to name
        for i, text in enumerate(wkt):
            try:
                shapely.from_wkt(text, on_invalid="raise")
            except Exception:
                raise DataError(f"{where}: row {i + 2}: polygon {text[:60]!r} is not valid WKT") from None
        raise
    cent = shapely.centroid(geoms)
    lon, lat = shapely.get_x(cent), shapely.get_y(cent)
    bad = ~(np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: row {i + 2}: polygon centroid ({lat[i]}, {lon[i]}) is not a lon/lat location")
    return lat, lon
