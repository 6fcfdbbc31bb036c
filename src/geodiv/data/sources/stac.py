"""``geodiv data stac-build CONFIG``: Sentinel-2 L2A patches at catalog locations, from a STAC API or a static
STAC catalog, written as geodiv shards.

For each location: search items of ``collection`` covering the point (``datetime`` range, ``eo:cloud_cover`` below
``max_cloud``), take the least cloudy (ties: newest, then id), read a ``size`` x ``size`` window at 10 m around the
point from each band's cloud-optimised GeoTIFF (coarser bands resampled onto the 10 m grid, ``resampling``),
and store it. A ``api`` that is an http(s) URL is searched with pystac-client; a local ``catalog.json`` is searched
with pystac (same rules; static catalogs have no search endpoint). Planetary Computer asset URLs are signed when the
optional ``planetary-computer`` package is importable (``sign: auto``).

Bands are found by asset key (``B02``, ``B8A``) or by the asset's ``eo:bands`` ``name`` / ``common_name``
(Earth Search v1's ``blue``, ``nir08``, ``swir16``, ``rededge1`` ...; a bare ``rededge`` by its centre
wavelength); cloud-optimised GeoTIFF assets win over JPEG 2000 duplicates (``blue-jp2``); ``assets:``
maps bands to keys by hand.

L2A offset (``harmonize``): products of processing baseline 04.00 or later store reflectance x 10000 + 1000.
What is subtracted so every item shares the pre-04.00 scale follows what the item says, in this order:
``earthsearch:boa_offset_applied: true`` (Earth Search v1 already removed it) -> 0; the assets'
``raster:bands`` ``offset``/``scale`` (e.g. -0.1 / 0.0001) -> ``-offset / scale`` (1000); otherwise
``s2:processing_baseline`` >= 04.00 -> 1000 (Planetary Computer serves ESA's values unchanged and marks the
baseline). ``boa_offset: N`` in the config overrides the rule; ``harmonize: false`` subtracts nothing. Each
sample's metadata records the offset removed (``boa_offset``).

Problems name the location and item: no item found, an item without a needed band asset, a window outside the
raster, nodata pixels. With ``on_error: skip`` they are counted and reported at the end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from geodiv.bands import S2_CENTER_NM, SATMAE_BANDS, canonical_band
from geodiv.config import StrictModel, load_config, validate_config
from geodiv.data.catalog import make_catalog, read_catalog, row_meta, write_catalog
from geodiv.data.shard_format import Sample
from geodiv.data.shard_writer import write_shards
from geodiv.data.sources.geotiff import without_nodata
from geodiv.errors import ConfigError, DataError, InputError
from geodiv.progress import log

GSD_M = 10.0
L2A_OFFSET = 1000


class StacBuildConfig(StrictModel):
    name: str = "stac"
    out: str | None = None
    #: STAC API URL (https://...) or path to a static catalog.json
    api: str
    collection: str | None = "sentinel-2-l2a"
    #: "2021-01-01/2021-12-31" (RFC 3339 interval) or None
    datetime: str | None = None
    max_cloud: float = Field(20.0, ge=0, le=100)
    #: locations: a catalog (.parquet/.csv with lat/lon) ...
    locations: str | None = None
    #: ... or drawn uniformly by land area in a region
    region: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    seed: int = 0
    #: L2A has no B10; default: the 10 bands SatMAE keeps
    bands: list[str] = Field(default_factory=lambda: list(SATMAE_BANDS))
    #: band -> asset key, when asset keys/eo:bands names do not identify the bands
    assets: dict[str, str] | None = None
    size: int = Field(96, ge=8)
    shard_size: int = Field(1000, ge=1)
    resampling: Literal["nearest", "bilinear", "cubic"] = "bilinear"
    sign: Literal["auto", "never"] = "auto"
    harmonize: bool = True
    #: value subtracted from every band (overrides what the item says; None: the rule in the module docstring)
    boa_offset: int | None = Field(None, ge=0)
    on_error: Literal["raise", "skip"] = "raise"


# ---------------------------------------------------------------------------------------------- search
def _parse_interval(text: str | None) -> tuple[datetime | None, datetime | None]:
    if not text:
        return None, None

    def one(s: str, end: bool) -> datetime | None:
        s = s.strip()
        if s in ("", ".."):
            return None
        if len(s) == 10:
            s += "T23:59:59.999999+00:00" if end else "T00:00:00+00:00"
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)

    parts = text.split("/")
    if len(parts) == 1:
        return one(parts[0], False), one(parts[0], True)
    return one(parts[0], False), one(parts[1], True)


def _cloud(item: Any) -> float:
    v = item.properties.get("eo:cloud_cover")
    return float(v) if v is not None else float("inf")


def _rank(items: list[Any]) -> list[Any]:
    """Least cloudy first; ties: newest first, then id."""
    return sorted(items, key=lambda it: (_cloud(it), -(it.datetime.timestamp() if it.datetime else 0), it.id))


class StaticSearch:
    """Point search over a static catalog with pystac (all items loaded once, then filtered per point)."""

    def __init__(self, path: str, cfg: StacBuildConfig) -> None:
        import pystac
        import shapely

        try:
            root = pystac.Catalog.from_file(path)
        except Exception as err:  # noqa: BLE001 - pystac raises many types for unreadable catalogs
            raise InputError(f"static STAC catalog {path}: cannot read ({err})") from None
        self.items = [
            it for it in root.get_items(recursive=True)
            if cfg.collection is None or it.collection_id in (None, cfg.collection)
        ]
        self.geoms = [shapely.geometry.shape(it.geometry) if it.geometry else shapely.box(*it.bbox) for it in self.items]
        self.start, self.end = _parse_interval(cfg.datetime)
        self.max_cloud = cfg.max_cloud

    def best(self, lat: float, lon: float) -> Any | None:
        import shapely

        pt = shapely.Point(lon, lat)
        hits = []
        for it, g in zip(self.items, self.geoms):
            if not g.covers(pt) or _cloud(it) > self.max_cloud:
                continue
            dt = it.datetime
            if dt is not None and ((self.start and dt < self.start) or (self.end and dt > self.end)):
                continue
            hits.append(it)
        return _rank(hits)[0] if hits else None


class ApiSearch:
    """Point search against a STAC API with pystac-client."""

    def __init__(self, url: str, cfg: StacBuildConfig) -> None:
        from pystac_client import Client

        self.client = Client.open(url)
        self.cfg = cfg

    def best(self, lat: float, lon: float) -> Any | None:
        search = self.client.search(
            collections=[self.cfg.collection] if self.cfg.collection else None,
            intersects={"type": "Point", "coordinates": [lon, lat]},
            datetime=self.cfg.datetime,
            query={"eo:cloud_cover": {"lte": self.cfg.max_cloud}},
            max_items=50,
        )
        items = [it for it in search.items() if _cloud(it) <= self.cfg.max_cloud]
        return _rank(items)[0] if items else None


def _signer(cfg: StacBuildConfig):
    if cfg.sign == "never":
        return None
    try:
        import planetary_computer
    except ImportError:
        return None
    return planetary_computer.sign


# ---------------------------------------------------------------------------------------------- reading
#: STAC ``eo`` common names (and Earth Search v1 asset keys) of the Sentinel-2 bands.
COMMON_NAMES: dict[str, str] = {
    "coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "rededge1": "B5", "rededge2": "B6",
    "rededge3": "B7", "nir": "B8", "nir08": "B8A", "nir09": "B9", "cirrus": "B10", "swir16": "B11", "swir22": "B12",
}
_REDEDGE = ("B5", "B6", "B7")


def asset_band(key: str, asset: Any) -> str | None:
    """The Sentinel-2 band a single-band asset holds (asset key, ``eo:bands`` name or common name), or None."""
    eo = asset.extra_fields.get("eo:bands") or []
    if len(eo) > 1:  # a multi-band asset (visual/TCI)
        return None
    info = eo[0] if eo and isinstance(eo[0], dict) else {}
    for name in (key, info.get("name")):
        if name:
            try:
                return canonical_band(str(name))
            except InputError:
                pass
    for name in (key, info.get("name"), info.get("common_name")):
        if name and str(name).lower() in COMMON_NAMES:
            return COMMON_NAMES[str(name).lower()]
    wavelength = info.get("center_wavelength")
    if str(info.get("common_name", "")).lower() == "rededge" and isinstance(wavelength, (int, float)):
        return min(_REDEDGE, key=lambda b: abs(S2_CENTER_NM[b] - 1000 * wavelength))
    return None


def band_assets(item: Any, bands: Sequence[str], explicit: dict[str, str] | None) -> dict[str, Any]:
    """{band: asset} by explicit mapping, asset key (``B02``) or ``eo:bands`` name / common name (COG assets
    before JPEG 2000 duplicates); ``DataError`` if one lacks."""
    found: dict[str, Any] = {}
    by_format = sorted(item.assets.items(), key=lambda kv: "tiff" not in str(kv[1].media_type or "").lower())
    for key, asset in by_format:
        cb = asset_band(key, asset)
        if cb is not None:
            found.setdefault(cb, asset)
    out = {}
    for b in bands:
        cb = canonical_band(b)
        if explicit and (b in explicit or cb in explicit):
            key = explicit.get(b, explicit.get(cb))
            if key not in item.assets:
                raise DataError(f"STAC item {item.id}: no asset {key!r} (for band {cb}); it has {', '.join(item.assets)}")
            out[cb] = item.assets[key]
        elif cb in found:
            out[cb] = found[cb]
        else:
            raise DataError(
                f"STAC item {item.id}: no asset for band {cb} (assets: {', '.join(item.assets)}; none has that band "
                "as key, eo:bands name or common name); map bands to asset keys with `assets:` in the config"
            )
    return out


def read_window(href: str, lat: float, lon: float, size: int, resampling: str, where: str) -> np.ndarray:
    """(size, size) pixels on a 10 m grid centred on (lat, lon), from one band's (cloud-optimised) GeoTIFF."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import transform
    from rasterio.windows import from_bounds

    try:
        with rasterio.open(href) as src:
            xs, ys = transform("EPSG:4326", src.crs, [lon], [lat])
            half = size * GSD_M / 2.0
            win = from_bounds(xs[0] - half, ys[0] - half, xs[0] + half, ys[0] + half, transform=src.transform)
            if win.col_off < -1e-6 or win.row_off < -1e-6 or win.col_off + win.width > src.width + 1e-6 or \
                    win.row_off + win.height > src.height + 1e-6:
                raise DataError(f"{where}: the {size} px window around ({lat:.5f}, {lon:.5f}) leaves the raster")
            data = src.read(1, window=win, out_shape=(size, size), resampling=Resampling[resampling],
                            masked=src.nodata is not None)
    except rasterio.errors.RasterioIOError as err:
        raise DataError(f"{where}: cannot read {href} ({err})") from None
    return without_nodata(data, where, " (swath edge?)")


def _baseline(item: Any) -> float:
    try:
        return float(item.properties.get("s2:processing_baseline", 0))
    except (TypeError, ValueError):
        return 0.0


def boa_offset(item: Any, assets: dict[str, Any], cfg: StacBuildConfig) -> int:
    """The value to subtract from the item's L2A bands (module docstring: the rule, per provider)."""
    if cfg.boa_offset is not None:
        return cfg.boa_offset
    if not cfg.harmonize:
        return 0
    if item.properties.get("earthsearch:boa_offset_applied") is True:
        return 0
    offsets = set()
    for asset in assets.values():
        rb = asset.extra_fields.get("raster:bands") or []
        if rb and isinstance(rb[0], dict) and rb[0].get("scale") and rb[0].get("offset") is not None:
            offsets.add(int(round(-float(rb[0]["offset"]) / float(rb[0]["scale"]))))
    if len(offsets) == 1:
        return max(offsets.pop(), 0)
    if len(offsets) > 1:
        raise DataError(f"STAC item {item.id}: its band assets give different raster:bands offsets "
                        f"({sorted(offsets)}); set boa_offset in the config")
    return L2A_OFFSET if _baseline(item) >= 4.0 else 0


def make_searcher(cfg: StacBuildConfig) -> StaticSearch | ApiSearch:
    """The point search of ``cfg.api``: an http(s) STAC API, or a static ``catalog.json``."""
    return ApiSearch(cfg.api, cfg) if cfg.api.startswith(("http://", "https://")) else StaticSearch(cfg.api, cfg)


class StacSamples(Sequence):
    """Patches at catalog rows; ``subset`` parts (for parallel builds) open their own search client."""

    def __init__(self, catalog: Any, cfg: StacBuildConfig, searcher: Any = None) -> None:
        self.catalog, self.cfg, self._searcher = catalog.reset_index(drop=True), cfg, searcher
        self.bands = [canonical_band(b) for b in cfg.bands]

    @property
    def searcher(self) -> Any:
        if self._searcher is None:
            self._searcher = make_searcher(self.cfg)
        return self._searcher

    @property
    def sign(self) -> Any:
        return _signer(self.cfg)

    def __len__(self) -> int:
        return len(self.catalog)

    def subset(self, begin: int, end: int) -> StacSamples:
        return StacSamples(self.catalog.iloc[begin:end], self.cfg)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        row = self.catalog.iloc[i]
        lat, lon = float(row["lat"]), float(row["lon"])
        where = f"location {row['id']} ({lat:.5f}, {lon:.5f})"
        item = self.searcher.best(lat, lon)
        if item is None:
            raise DataError(f"{where}: no {self.cfg.collection or 'STAC'} item with cloud cover <= {self.cfg.max_cloud}"
                            f"{' in ' + self.cfg.datetime if self.cfg.datetime else ''}")
        assets = band_assets(item, self.bands, self.cfg.assets)
        layers = []
        for b in self.bands:
            href = assets[b].get_absolute_href() or assets[b].href
            if self.sign is not None and href.startswith("http"):
                href = self.sign(href)
            layers.append(read_window(href, lat, lon, self.cfg.size, self.cfg.resampling,
                                      f"{where}, item {item.id}, band {b}"))
        image = np.stack(layers).astype(np.int64)
        offset = boa_offset(item, assets, self.cfg)
        if offset:
            image = np.clip(image - offset, 0, None)
        meta = row_meta(row)
        meta.update(
            source=f"stac:{item.id}", stac_item=item.id, date=item.datetime.isoformat() if item.datetime else None,
            cloud_cover=_cloud(item) if np.isfinite(_cloud(item)) else None, boa_offset=offset,
        )
        return Sample(str(row["id"]), image, meta)


# ------------------------------------------------------------------------------------------------ entry
def stac_locations(cfg: StacBuildConfig):
    if cfg.locations is not None:
        return read_catalog(cfg.locations)
    if cfg.region is None or cfg.n is None:
        raise ConfigError("stac-build needs `locations` (a catalog file) or `region` and `n`")
    from geodiv import geo

    lat, lon = geo.sample_locations(cfg.region, cfg.n, seed=np.random.default_rng([cfg.seed, 3]))
    return make_catalog(lat, lon, "stac")


def stac_build(config: StacBuildConfig | dict[str, Any] | str | os.PathLike[str],
               out: str | os.PathLike[str] | None = None, *, workers: int = 1,
               scheduler: str | None = None) -> dict[str, Any]:
    """Search, read and write shards; returns the manifest with ``root`` set to the output folder.

    ``workers`` processes, or the workers of a Dask ``scheduler`` (``"local"`` or ``tcp://HOST:8786``, the output
    folder on a shared file system), read the patches of different shards in parallel (geodiv.data.parallel).
    """
    if isinstance(config, StacBuildConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = validate_config(StacBuildConfig, config, "<stac config>")
    else:
        cfg = load_config(StacBuildConfig, config)
    root = Path(out or cfg.out or "")
    if not str(root) or str(root) == ".":
        raise ConfigError("stac-build needs an output folder (--out or `out:` in the config)")
    api = cfg.api
    searcher = make_searcher(cfg)
    catalog = stac_locations(cfg)
    root.mkdir(parents=True, exist_ok=True)
    write_catalog(catalog, root / "catalog.parquet")
    log(f"stac-build: {len(catalog)} locations, searching {api}")
    manifest = write_shards(
        StacSamples(catalog, cfg, searcher), root, cfg.shard_size, bands=cfg.bands, size=cfg.size,
        config=cfg.model_dump(mode="json"), seed=cfg.seed, on_error=cfg.on_error, resume=True,
        total=len(catalog), desc=cfg.name, extra={"name": cfg.name, "catalog": "catalog.parquet"},
        workers=workers, scheduler=scheduler,
    )
    manifest["root"] = str(root)
    return manifest
