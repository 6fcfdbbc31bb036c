"""``geodiv build``: dataset config -> candidate catalog -> strategy selection -> shards + manifest.

A dataset file holds one dataset, or a suite: shared ``defaults`` plus ``datasets: {name: {...}}`` (the paper's
seven datasets come from one such file, configs/datasets/paper.yaml). Builds are resumable: the selected catalog is
kept in ``DIR/catalog.parquet`` and finished shards (checked by sha256) are kept; the partial shard is redone, and
the final manifest equals that of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import Field, field_validator

from geodiv.atomic import folder_lock, write_json
from geodiv.bands import S2_BANDS, canonical_band
from geodiv.config import StrictModel, read_yaml, validate_config
from geodiv.data.catalog import (
    exclusion_points,
    make_catalog,
    nearest_km,
    read_catalog,
    row_meta,
    write_catalog,
)
from geodiv.data.shard_format import MANIFEST, Sample, safe_key
from geodiv.data.shard_reader import read_manifest, verify_shard
from geodiv.data.shard_writer import write_shards
from geodiv.data.sources.fmow import FMOW_BANDS, FmowSourceConfig, fmow_catalog
from geodiv.data.sources.geotiff import FileSamples, GeoTiffSourceConfig, geotiff_catalog
from geodiv.data.sources.webdataset import ForeignShards, WebDatasetSourceConfig
from geodiv.data.strategies import GlobalStrategy, Strategy, pool_regions, select
from geodiv.errors import ConfigError, DataError, InputError
from geodiv.progress import log


class SimEarthSourceConfig(StrictModel):
    kind: Literal["simearth"] = "simearth"
    #: the simulated world's seed: the same location gives the same patch in every dataset
    world_seed: int = 0
    #: geodiv.simearth.SimConfig fields (defaults are the study's)
    sim: dict[str, Any] | None = None


Source = Annotated[
    Union[SimEarthSourceConfig, GeoTiffSourceConfig, FmowSourceConfig, WebDatasetSourceConfig],
    Field(discriminator="kind"),
]


class DatasetConfig(StrictModel):
    """One pretraining dataset: where its samples come from and how they are chosen."""

    name: str = "dataset"
    n: int = Field(ge=1)
    size: int = Field(96, ge=8)
    bands: list[str] = Field(default_factory=lambda: list(S2_BANDS))
    seed: int = 0
    shard_size: int = Field(1000, ge=1)
    strategy: Strategy = Field(default_factory=GlobalStrategy)
    source: Source = Field(default_factory=SimEarthSourceConfig)
    #: catalogs (.parquet/.csv) or dataset folders whose locations this dataset must keep away from
    exclude: list[str] = Field(default_factory=list)
    min_km: float = Field(1.0, ge=0)
    #: extra SimEarth candidates drawn per region (share of its quota) to replace excluded ones
    margin: float = Field(0.05, ge=0)
    on_error: Literal["raise", "skip"] = "raise"

    @field_validator("bands")
    @classmethod
    def _bands(cls, v: list[str]) -> list[str]:
        out = [canonical_band(b) for b in v]
        if len(set(out)) != len(out):
            raise ValueError("bands repeat a name")
        return out


class DatasetSuite(StrictModel):
    """Several datasets sharing ``defaults`` (typically: equal ``n``, size, bands, seed and source)."""

    defaults: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, dict[str, Any]]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "strategy" else v
    return out


def load_dataset_configs(
    config_or_path: DatasetConfig | dict[str, Any] | str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
) -> dict[str, DatasetConfig]:
    """{name: DatasetConfig} from a dataset file, a suite file, a mapping or a config object.

    ``overrides`` (dotted keys, e.g. ``{"n": 1000}``) apply to every dataset.
    """
    return _load_configs(config_or_path, overrides)[0]


def _load_configs(
    config_or_path: DatasetConfig | dict[str, Any] | str | os.PathLike[str],
    overrides: dict[str, Any] | None,
) -> tuple[dict[str, DatasetConfig], bool]:
    """(configs, whether the input is a suite), reading a file once."""
    if isinstance(config_or_path, DatasetConfig):
        return {config_or_path.name: config_or_path}, False
    source = "<mapping>"
    data = config_or_path
    if isinstance(config_or_path, (str, os.PathLike)):
        source = str(config_or_path)
        data = read_yaml(config_or_path)
    if not isinstance(data, dict):
        raise ConfigError(f"dataset config {source} must be a mapping")
    over = _dotted(overrides or {})
    if "datasets" in data:
        suite = validate_config(DatasetSuite, data, source)
        out = {}
        for name, spec in suite.datasets.items():
            merged = _merge(_merge(suite.defaults, {"name": name}), spec or {})
            out[name] = validate_config(DatasetConfig, _merge(merged, over), f"{source} (dataset {name})")
        return out, True
    cfg = validate_config(DatasetConfig, _merge(data, over), source)
    return {cfg.name: cfg}, False


def _dotted(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


# ------------------------------------------------------------------------------------------- candidates
def simearth_candidates(cfg: DatasetConfig):
    """SimEarth candidate catalog: land locations uniform by area per region of the strategy, annotated."""
    from geodiv import geo

    lats, lons = [], []
    for k, (region, count) in enumerate(sorted(pool_regions(cfg.strategy, cfg.n).items(), key=lambda kv: str(kv[0]))):
        m = count + int(np.ceil(count * cfg.margin)) + (8 if cfg.margin > 0 else 0)
        spec = list(region) if isinstance(region, tuple) else region
        lat, lon = geo.sample_locations(spec, m, seed=np.random.default_rng([cfg.seed, 1, k]))
        lats.append(lat)
        lons.append(lon)
    lat, lon = np.concatenate(lats), np.concatenate(lons)
    # micro-degree duplicates would share an id (vanishingly rare); keep the first
    key = np.round(lat * 1e6).astype(np.int64) * 1_000_000_000 + np.round(lon * 1e6).astype(np.int64)
    _, first = np.unique(key, return_index=True)
    keep = np.sort(first)
    return make_catalog(lat[keep], lon[keep], f"simearth:{cfg.source.world_seed}")


def candidate_catalog(cfg: DatasetConfig):
    src = cfg.source
    if isinstance(src, SimEarthSourceConfig):
        cat = simearth_candidates(cfg)
    elif isinstance(src, GeoTiffSourceConfig):
        cat = geotiff_catalog(src)
    elif isinstance(src, FmowSourceConfig):
        cat = fmow_catalog(src)
    else:
        records = [(k, m) for k, _, m in ForeignShards(src, cfg.bands, cfg.size).records()]
        cat = make_catalog(
            [m["lat"] for _, m in records], [m["lon"] for _, m in records], [m["source"] for _, m in records],
            ids=[safe_key(k) for k, _ in records],
            columns={"label": [m.get("label") for _, m in records]} if src.label_key else None,
        )
    if cfg.exclude:
        lat_x, lon_x = exclusion_points(cfg.exclude)
        far = nearest_km(lat_x, lon_x, cat["lat"].to_numpy(), cat["lon"].to_numpy()) >= cfg.min_km
        if (~far).any():
            log(f"dataset {cfg.name}: dropped {int((~far).sum())} candidate(s) within {cfg.min_km} km of excluded locations")
        cat = cat[far].reset_index(drop=True)
    return cat


# ---------------------------------------------------------------------------------------------- samples
class SimEarthSamples(Sequence):
    """Simulated samples of catalog rows, computed in chunks (one vectorised geography lookup per chunk)."""

    def __init__(self, catalog: Any, cfg: DatasetConfig, chunk: int = 64) -> None:
        from geodiv.simearth.world import SimConfig

        self.catalog = catalog.reset_index(drop=True)
        self.cfg, self.chunk = cfg, chunk
        self.sim = validate_config(SimConfig, cfg.source.sim or {}, "source.sim")
        self.band_idx = [S2_BANDS.index(b) for b in cfg.bands]
        self._cache: dict[int, list[Sample]] = {}

    def __len__(self) -> int:
        return len(self.catalog)

    def subset(self, begin: int, end: int) -> SimEarthSamples:
        """Rows ``begin..end-1`` (a patch depends only on its location and the world seed, not on its batch)."""
        return SimEarthSamples(self.catalog.iloc[begin:end], self.cfg, self.chunk)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        start = (i // self.chunk) * self.chunk
        if start not in self._cache:
            self._cache = {start: self._make(start, min(start + self.chunk, len(self)))}
        return self._cache[start][i - start]

    def _make(self, a: int, b: int) -> list[Sample]:
        from geodiv.simearth.world import simulate_patches

        rows = self.catalog.iloc[a:b]
        patches = simulate_patches(rows["lat"].to_numpy(), rows["lon"].to_numpy(), self.cfg.source.world_seed,
                                   size=self.cfg.size, config=self.sim)
        out = []
        for (_, row), patch in zip(rows.iterrows(), patches):
            meta = dict(patch.meta)
            meta["patch_landcover"] = meta.pop("landcover", None)
            meta.update(row_meta(row))
            out.append(Sample(str(row["id"]), patch.image[self.band_idx], meta))
        return out


def samples_for(cfg: DatasetConfig, catalog: Any):
    src = cfg.source
    if isinstance(src, SimEarthSourceConfig):
        return SimEarthSamples(catalog, cfg)
    extra = [c for c in ("label", "category", "location_id", "image_id") if c in catalog.columns]
    if isinstance(src, GeoTiffSourceConfig):
        return FileSamples(catalog, cfg.bands, cfg.size, src.band_names, src.scale, extra)
    if isinstance(src, FmowSourceConfig):
        return FileSamples(catalog, cfg.bands, cfg.size, FMOW_BANDS, 1.0, extra)
    return ForeignSamples(catalog, cfg, extra)


class ForeignSamples(Sequence):
    """The catalog rows' samples from foreign shards, read in shard order; a subset reads only its rows' shards.

    Indexing is sequential (a resumed or parallel build asks for its rows in order): the shards are streamed
    once, not searched per item.
    """

    def __init__(self, catalog: Any, cfg: DatasetConfig, extra: list[str]) -> None:
        self.catalog, self.cfg, self.extra = catalog.reset_index(drop=True), cfg, extra
        self._stream: Any = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.catalog)

    def subset(self, begin: int, end: int) -> ForeignSamples:
        return ForeignSamples(self.catalog.iloc[begin:end], self.cfg, self.extra)

    def _samples(self) -> Any:
        src = self.cfg.source
        # a record's source is "URL#KEY": read only the shards that hold this catalog's rows, in order
        urls = list(dict.fromkeys(str(s).rsplit("#", 1)[0] for s in self.catalog["source"]))
        wanted = {str(k): i for i, k in enumerate(self.catalog["id"])}
        shards = ForeignShards(src.model_copy(update={"urls": urls}), self.cfg.bands, self.cfg.size)
        for key, raw, meta in shards.records():
            row = wanted.get(safe_key(key))
            if row is not None:
                yield row, lambda key=key, raw=raw, meta=meta, row=row: self._decode(shards, key, raw, meta, row)

    def _decode(self, shards: ForeignShards, key: str, raw: dict[str, Any], meta: dict[str, Any], row: int) -> Sample:
        sample = shards.sample(key, raw, meta)  # a bad image is one bad item, not the end of the stream
        sample.meta.update(row_meta(self.catalog.iloc[row], self.extra))
        return sample

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self._stream is None or i < self._next:
            self._stream, self._next = self._samples(), 0
        for row, decode in self._stream:
            self._next = row + 1
            if row == i:
                return decode()
        raise DataError(f"foreign shards: sample {self.catalog['id'].iloc[i]} of the catalog was not found in "
                        f"{self.catalog['source'].iloc[i]}; the shards changed since the catalog was made")


# ------------------------------------------------------------------------------------------------ build
def _selected_catalog(cfg: DatasetConfig, out: Path):
    """The dataset's rows in shard order; reused from a previous (interrupted) run of the same config."""
    cat_path = out / "catalog.parquet"
    stamp = out / ".progress" / "catalog-config.json"
    config = cfg.model_dump(mode="json")
    if cat_path.exists() and stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")) == config:
        return read_catalog(cat_path, annotate=False)
    candidates = candidate_catalog(cfg)
    # Scorers that need images (spectral entropy) simulate/read them at the dataset's own size and bands.
    candidates.attrs["dataset_config"] = cfg
    rows = select(cfg.strategy, candidates, cfg.n, cfg.seed)
    chosen = candidates.iloc[rows].reset_index(drop=True)
    chosen.attrs.pop("dataset_config", None)  # pandas copies attrs; the catalog file must not carry it
    if isinstance(cfg.source, WebDatasetSourceConfig):  # foreign shards are read sequentially
        order = {k: i for i, k in enumerate(candidates["id"])}
        chosen = chosen.iloc[np.argsort([order[k] for k in chosen["id"]], kind="stable")].reset_index(drop=True)
    write_catalog(chosen, cat_path)
    write_json(stamp, config)
    return read_catalog(cat_path, annotate=False)


def build_one(cfg: DatasetConfig, out: str | os.PathLike[str], *, workers: int = 1,
              scheduler: str | None = None) -> dict[str, Any]:
    """Build one dataset into ``out`` while holding the folder's lock (a second build waits or stops)."""
    with folder_lock(out, f"geodiv build {cfg.name}"):
        return _build_one(cfg, Path(out), workers, scheduler)


def _build_one(cfg: DatasetConfig, out: Path, workers: int, scheduler: str | None) -> dict[str, Any]:
    prior = out / ".progress" / "run.json"
    config = cfg.model_dump(mode="json")
    if prior.exists():
        run = json.loads(prior.read_text(encoding="utf-8"))
        if run.get("config") != config:
            raise InputError(
                f"{out} holds a build of a different config; build into a new folder or delete {out}"
            )
    if (out / MANIFEST).exists():
        manifest = _finished_manifest(out)
        if manifest is not None and manifest.get("config") == config:
            log(f"{out}: already built ({manifest['n_samples']} samples; every shard matches its sha256)")
            manifest.pop("root", None)
            return manifest
    catalog = _selected_catalog(cfg, out)
    log(f"dataset {cfg.name}: {len(catalog)} samples selected ({cfg.strategy.kind}); writing shards to {out}")
    return write_shards(
        samples_for(cfg, catalog), out, cfg.shard_size, bands=cfg.bands, size=cfg.size, config=config,
        seed=cfg.seed, on_error=cfg.on_error, resume=True, total=len(catalog), desc=cfg.name,
        extra={"name": cfg.name, "catalog": "catalog.parquet"}, workers=workers, scheduler=scheduler,
    )


def _finished_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of a finished build whose shards all match their sha256, else None (the build resumes: shards
    that still match their progress record are kept, the first damaged one and those after it are rewritten)."""
    try:
        manifest = read_manifest(out)
        for shard in manifest["shards"]:
            verify_shard(out, shard)
    except DataError as err:
        log(f"{out}: the finished build does not check out ({err}); rebuilding what is damaged")
        return None
    return manifest


def build_dataset(
    config_or_path: DatasetConfig | dict[str, Any] | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    only: str | None = None,
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Build a dataset (shards + ``manifest.json`` in ``out``) and return its manifest.

    A suite file builds each dataset into ``out/NAME`` (or only ``only``) and returns a summary
    ``{n_samples, shards, datasets: {name: manifest}}``. ``workers`` processes (or the workers of a Dask
    ``scheduler``: ``"local"`` or ``tcp://HOST:8786``) make the shards in parallel; the shards and manifests are
    byte-identical for any number of workers (geodiv.data.parallel).
    """
    configs, is_suite = _load_configs(config_or_path, overrides)
    if only is not None:
        if only not in configs:
            raise ConfigError(f"no dataset {only!r} in the config; it has {', '.join(configs)}")
        configs = {only: configs[only]}
    if not is_suite:
        (cfg,) = configs.values()
        return build_one(cfg, out, workers=workers, scheduler=scheduler)
    manifests = {name: build_one(cfg, Path(out) / name, workers=workers, scheduler=scheduler)
                 for name, cfg in configs.items()}
    return {
        "n_samples": sum(m["n_samples"] for m in manifests.values()),
        "shards": [f"{name}/{s['path']}" for name, m in manifests.items() for s in m["shards"]],
        "datasets": manifests,
    }
