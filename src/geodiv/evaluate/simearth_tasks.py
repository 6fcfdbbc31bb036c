"""SimEarth downstream tasks: locations drawn on land, disjoint from pretraining, simulated, stored as a task folder.

``simearth_task(name, ...)`` draws downstream locations with ``geodiv.geo.sample_locations`` (by default the same
number per continent, so that every continent has train, val and test samples for the per-continent analysis),
drops any within ``min_km`` of a pretraining location (``exclude``), simulates each patch with
``geodiv.simearth.simulate_patch`` and labels it with ``geodiv.simearth.task_target``, and writes each split as
shards (``geodiv.data.write_shards``; labels in the metadata, masks as ``KEY.label.npy``) under ``out_dir`` with a
``task.json`` in the geodiv task-folder layout. The folder is the cache: a second call with the same arguments
reads it, and an interrupted build resumes shard by shard. The returned task is the task-folder reader.

The structure tasks (``scene``, ``settlement``) stratify by class instead of by continent
(``draw_structure_locations``): each class gets the same number of samples per split, at locations drawn from a
land pool in proportion to that class's prevalence there (``simearth.structures.prevalence``), and each patch is
simulated with that structure at its centre. The per-class geography thus follows the world's prevalence; the
class mix is balanced so that every class can be learned and scored.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import folder_lock, write_json
from geodiv.bands import S2_BANDS
from geodiv.data.catalog import nearest_km
from geodiv.errors import InputError
from geodiv.evaluate.tasks import task_folder
from geodiv.evaluate.tasks.base import SPLITS, TASK_JSON
from geodiv.progress import log

#: Continents a balanced SimEarth task covers (Antarctica excluded, as in the study).
TASK_CONTINENTS = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")
GENERATOR_VERSION = 2
#: Land locations drawn per sample for the prevalence-weighted pool of a structure task.
_POOL_PER_SAMPLE = 8
#: Pools drawn at most before a rare class gives up.
_MAX_POOLS = 20


def _task_names() -> Sequence[str]:
    from geodiv import simearth

    return tuple(simearth.TASKS)


def default_task_dir(name: str, params: dict[str, Any]) -> Path:
    """``$GEODIV_CACHE/tasks/simearth-NAME-HASH`` (default cache ``~/.cache/geodiv``)."""
    root = Path(os.environ.get("GEODIV_CACHE", Path.home() / ".cache" / "geodiv"))
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return root / "tasks" / f"simearth-{name}-{digest}"


def far_from(
    lat: np.ndarray, lon: np.ndarray, ex_lat: np.ndarray, ex_lon: np.ndarray, min_km: float
) -> np.ndarray:
    """Boolean mask of the points farther than ``min_km`` (great circle) from every excluded point."""
    return nearest_km(ex_lat, ex_lon, lat, lon) > min_km


def draw_locations(
    counts: dict[str, tuple[Any, int]],
    seed: int,
    exclude: tuple[np.ndarray, np.ndarray] | None,
    min_km: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``counts[label] = (region, n)``: n land locations in each region (anything ``sample_locations`` takes), each
    at least ``min_km`` from every excluded location and from each other; returns lat, lon and each one's label."""
    from geodiv.geo import sample_locations

    ex_lat, ex_lon = (np.asarray(a, dtype=float) for a in exclude) if exclude is not None else (np.empty(0),) * 2
    lats, lons, regions = [], [], []
    for r_index, (label, (region, n)) in enumerate(counts.items()):
        got_lat, got_lon = np.empty(0), np.empty(0)
        for attempt in range(20):
            need = n - len(got_lat)
            if need <= 0:
                break
            lat, lon = sample_locations(region, int(math.ceil(need * 1.25)) + 4, seed=[seed, r_index, attempt])
            keep = far_from(lat, lon, np.r_[ex_lat, got_lat], np.r_[ex_lon, got_lon], min_km)
            lat, lon = lat[keep], lon[keep]
            # Also keep the new points apart from one another (greedy, in draw order).
            chosen: list[int] = []
            for i in range(len(lat)):
                if len(chosen) >= need:
                    break
                if not chosen or far_from(lat[i : i + 1], lon[i : i + 1], lat[chosen], lon[chosen], min_km)[0]:
                    chosen.append(i)
            got_lat, got_lon = np.r_[got_lat, lat[chosen]], np.r_[got_lon, lon[chosen]]
        if len(got_lat) < n:
            raise InputError(
                f"could only place {len(got_lat)} of {n} task locations in {label} at least {min_km} km from the "
                "pretraining locations and each other; lower min_km or the sample counts"
            )
        lats.append(got_lat[:n])
        lons.append(got_lon[:n])
        regions += [label] * n
    return np.concatenate(lats), np.concatenate(lons), np.asarray(regions, dtype=object)


def draw_structure_locations(
    classes: Sequence[str],
    counts: dict[str, int],
    seed: int,
    exclude: tuple[np.ndarray, np.ndarray] | None,
    min_km: float,
    continents: Sequence[str] = TASK_CONTINENTS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``counts[class]`` locations per structure class, drawn without replacement from a pool of land locations
    (uniform by area over ``continents``, each at least ``min_km`` from every excluded location) with probability
    proportional to the class's prevalence there; chosen locations are kept ``min_km`` apart. Returns lat, lon and
    each location's class name."""
    from geodiv.geo import sample_locations
    from geodiv.simearth import STRUCTURES, lookup
    from geodiv.simearth.structures import prevalence

    rng = np.random.default_rng([seed, 12])
    n_pool = max(2000, _POOL_PER_SAMPLE * sum(counts.values()))
    lat, lon, weights = np.empty(0), np.empty(0), np.empty((0, len(STRUCTURES)))

    def grow(attempt: int) -> None:
        """Add n_pool land locations (away from the excluded ones) and their prevalence to the pool."""
        nonlocal lat, lon, weights
        la, lo = sample_locations(list(continents), n_pool, seed=[seed, 12, attempt])
        if exclude is not None:
            keep = far_from(la, lo, np.asarray(exclude[0], float), np.asarray(exclude[1], float), min_km)
            la, lo = la[keep], lo[keep]
        geo = lookup(la, lo)
        w = prevalence(geo["fractions"], geo["climate"], geo["continent"], geo["coastal"])
        lat, lon, weights = np.r_[lat, la], np.r_[lon, lo], np.vstack([weights, w])

    grow(0)
    attempts = 1
    chosen: list[int] = []
    out_cls: list[str] = []
    for name in classes:
        k = STRUCTURES.index(name)
        need, got = counts.get(name, 0), 0
        while got < need:
            w = weights[:, k]
            if w.sum() <= 0:
                if attempts >= _MAX_POOLS:
                    raise InputError(
                        f"could only place {got} of {need} task locations for structure {name!r} in "
                        f"{attempts * n_pool} land locations (it is rare there); lower the task sizes")
                grow(attempts)
                attempts += 1
                continue
            i = int(rng.choice(len(w), p=w / w.sum()))
            weights[i] = 0.0  # never drawn again, for any class
            if chosen and not far_from(lat[i:i + 1], lon[i:i + 1], lat[chosen], lon[chosen], min_km)[0]:
                continue
            chosen.append(i)
            out_cls.append(name)
            got += 1
    return lat[chosen], lon[chosen], np.asarray(out_cls, dtype=object)


def _split_counts(n_total: int, regions: Sequence[str]) -> dict[str, int]:
    base, extra = divmod(n_total, len(regions))
    return {r: base + (1 if i < extra else 0) for i, r in enumerate(regions)}


def simearth_task(
    name: str,
    n_train: int = 600,
    n_val: int = 150,
    n_test: int = 300,
    seed: int = 0,
    size: int = 96,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    balanced: bool = True,
    continents: Sequence[str] = TASK_CONTINENTS,
    min_km: float = 10.0,
    shard_size: int = 500,
    workers: int = 1,
    scheduler: str | None = None,
):
    """Build (or reuse) the SimEarth task ``name`` and return it as a :class:`~geodiv.evaluate.tasks.Task`.

    ``balanced``: each split holds the same number of samples per continent in ``continents``; otherwise
    locations are uniform by land area over those continents. ``exclude``: (lat, lon) of the pretraining
    samples; no task location lies within ``min_km`` of them (nor of another task location). ``workers`` /
    ``scheduler``: make the shards in parallel (geodiv.data.parallel); a task is byte-identical for any number of
    workers, so they are not part of its parameters.
    """
    from geodiv import simearth

    if name not in _task_names():
        raise InputError(f"unknown SimEarth task {name!r}; choose one of {', '.join(_task_names())}")
    spec = simearth.TASK_SPECS[name]
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if any(v < 0 for v in sizes.values()) or sizes["train"] == 0 or sizes["test"] == 0:
        raise InputError(f"SimEarth task sizes must be >= 0 with train and test > 0, got {sizes}")
    ex_digest = None
    if exclude is not None:
        ex = np.column_stack([np.asarray(exclude[0], float), np.asarray(exclude[1], float)])
        ex_digest = hashlib.sha256(np.ascontiguousarray(ex).tobytes()).hexdigest()[:16]
    params = {"task": name, "sizes": sizes, "seed": seed, "size": size, "balanced": balanced,
              "continents": list(continents), "min_km": min_km, "exclude": ex_digest, "version": GENERATOR_VERSION}
    out = Path(out_dir) if out_dir is not None else default_task_dir(name, params)
    with folder_lock(out, f"geodiv task {name}"):  # one writer per task folder
        spec_file = out / TASK_JSON
        if spec_file.is_file() and json.loads(spec_file.read_text(encoding="utf-8")).get("info", {}).get("params") == params:
            return _open(out)
        structured = name in simearth.STRUCTURE_TASKS
        labels = list(simearth.TASK_STRUCTURES[name]) if structured else list(continents) if balanced else ["all"]
        counts = {s: _split_counts(n, labels) for s, n in sizes.items()}
        # One draw for all splits, so the min-distance rule holds across splits too.
        all_counts = {r: sum(counts[s][r] for s in SPLITS) for r in labels}
        if structured:
            lat, lon, drawn_for = draw_structure_locations(labels, all_counts, seed, exclude, min_km, continents)
        else:
            region_of = {r: (r if balanced else list(continents)) for r in labels}
            lat, lon, drawn_for = draw_locations(
                {r: (region_of[r], n) for r, n in all_counts.items()}, seed, exclude, min_km
            )
        # Deal each region's locations out to the splits in order.
        split_rows: dict[str, list[int]] = {s: [] for s in SPLITS}
        for r in all_counts:
            rows = list(np.nonzero(drawn_for == r)[0])
            for s in SPLITS:
                take = counts[s].get(r, 0)
                split_rows[s] += rows[:take]
                rows = rows[take:]
        for split in SPLITS:
            rows = np.asarray(sorted(split_rows[split]), dtype=np.int64)
            if rows.size == 0:
                continue
            kinds = drawn_for[rows] if structured else None
            _write_split(out / split, name, split, lat[rows], lon[rows], seed, size, shard_size, params, kinds,
                         workers, scheduler)
        _write_task_json(out, name, spec, {s: len(split_rows[s]) for s in SPLITS}, params)
        log(f"SimEarth task {name}: {sum(sizes.values())} samples -> {out}")
        return _open(out)


class _TaskSamples(Sequence):
    """The samples of one split: patch ``i`` at (lat[i], lon[i]) with a seed from the split and ``i``."""

    def __init__(self, name: str, split: str, lat: np.ndarray, lon: np.ndarray, seed: int, size: int,
                 kinds: np.ndarray | None = None, offset: int = 0) -> None:
        self.name, self.split, self.lat, self.lon, self.seed, self.size = name, split, lat, lon, seed, size
        self.kinds, self.offset = kinds, offset  # kinds: the structure drawn at each location (structure tasks)

    def __len__(self) -> int:
        return len(self.lat)

    def subset(self, begin: int, end: int) -> _TaskSamples:
        kinds = None if self.kinds is None else self.kinds[begin:end]
        return _TaskSamples(self.name, self.split, self.lat[begin:end], self.lon[begin:end], self.seed, self.size,
                            kinds, self.offset + begin)

    def __getitem__(self, j: int) -> Any:  # type: ignore[override]
        from geodiv import simearth
        from geodiv.data.shard_format import Sample

        if not 0 <= j < len(self):
            raise IndexError(j)
        # Patch seeds depend on the split and position, never on the pretraining seeds (disjoint streams).
        i = self.offset + j
        la, lo = float(self.lat[j]), float(self.lon[j])
        patch = simearth.simulate_patch(la, lo, seed=int(hash_seed(self.seed, SPLITS.index(self.split), i)),
                                        size=self.size, structure=None if self.kinds is None else str(self.kinds[j]))
        target = simearth.task_target(self.name, patch)
        meta = {k: v for k, v in patch.meta.items() if _jsonable(v)}
        meta.update(lat=la, lon=lo)
        arrays = {}
        if isinstance(target, np.ndarray):
            arrays["label"] = target.astype(np.uint8)
        else:
            meta["label"] = target.item() if isinstance(target, np.generic) else target
        return Sample(f"{self.split}-{i:06d}", patch.image, meta, arrays)


def hash_seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:4], "little")


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def _write_split(folder: Path, name: str, split: str, lat, lon, seed: int, size: int, shard_size: int, params,
                 kinds: np.ndarray | None = None, workers: int = 1, scheduler: str | None = None):
    from geodiv.data.shard_writer import write_shards

    write_shards(
        _TaskSamples(name, split, lat, lon, seed, size, kinds), folder, shard_size=shard_size, bands=S2_BANDS, size=size,
        config={"simearth_task": params, "split": split}, seed=seed, resume=True, total=len(lat),
        desc=f"simearth {name}/{split}", workers=workers, scheduler=scheduler,
    )


def _write_task_json(out: Path, name: str, spec: dict[str, Any], counts: dict[str, int], params: dict[str, Any]) -> None:
    """task.json last (an interrupted build leaves no loadable task), in the geodiv task-folder layout."""
    classes = list(spec["classes"]) if spec.get("classes") is not None else None
    write_json(out / TASK_JSON, task_folder.task_json(
        f"simearth-{name}", spec["type"], classes, list(S2_BANDS), has_location=True,
        splits={s: s for s, n in counts.items() if n > 0}, info={"source": "simearth", "params": params},
        class_groups=spec.get("class_groups"),
    ))


def _open(out: Path):
    return task_folder.load(out)


def _load_named(spec: str, **options: Any):
    import inspect

    known = [p for p in inspect.signature(simearth_task).parameters if p != "name"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"unknown option(s) for the SimEarth task {spec!r}: {', '.join(unknown)} "
                         f"(known: {', '.join(known)})")
    return simearth_task(str(spec), **options)

