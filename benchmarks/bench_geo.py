"""Geography lookups and land sampling: ``geodiv.geo`` against straightforward ways of doing the same.

Points: 1,000,000 uniform on the sphere (100,000 with ``quick``), seed 0. Layers are loaded (and unpacked to the
cache) before timing; every time is the best of ``repeats`` runs, single process.

- ``continent_index``: raster lookup + exact polygon test only in boundary cells. Baseline: a point-in-polygon
  query of every point against the same continent polygons (shapely STRtree), timed on a tenth of the points
  and scaled; the two agree except where MODIS-only islands add land (reported).
- ``landcover_of``, ``climate_of``, ``biome_of``, ``annotate``: no baseline (target only).
- ``landcover_fractions`` (window 7): bit-packed counting. Baseline: the plain loop over the 49 window offsets
  with ``np.add.at`` into a (N, 17) table, timed on a tenth of the points and scaled; results checked equal.
- ``sample_locations``: 100,000 land points per continent (10,000 with ``quick``), default exclusions except
  Antarctica, where ice is kept (its ice-free land is a few islands). Baseline: rejection sampling of uniform
  points on the sphere until enough land of the continent is found, timed for a tenth and scaled.
``python benchmarks/bench_geo.py [--quick]`` prints the rows.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import shapely

from geodiv.geo import (
    CONTINENTS,
    annotate,
    biome_of,
    climate_of,
    continent_index,
    landcover_fractions,
    landcover_of,
    sample_locations,
)
from geodiv.geo.landcover import _igbp
from geodiv.geo.regions import _polygons


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def sphere_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def polygon_baseline(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    _, poly_continent, tree = _polygons()
    hit_pt, hit_poly = tree.query(shapely.points(lon, lat), predicate="intersects")
    out = np.full(lat.shape, -1, dtype=np.int8)
    out[hit_pt] = poly_continent[hit_poly]
    return out


def fractions_baseline(lat: np.ndarray, lon: np.ndarray, window: int = 7) -> np.ndarray:
    grid = np.asarray(_igbp())
    h, w = grid.shape
    row = np.minimum(((90 - lat) * 20).astype(np.int64), h - 1)
    col = ((lon + 180) * 20).astype(np.int64) % w
    counts = np.zeros((lat.size, 17), dtype=np.int64)
    ar = np.arange(lat.size)
    half = window // 2
    for dr in range(-half, half + 1):
        r = row + dr
        over = (r < 0) | (r >= h)
        r = np.where(r < 0, -r - 1, np.where(r >= h, 2 * h - 1 - r, r))
        c0 = np.where(over, col + w // 2, col)
        for dc in range(-half, half + 1):
            np.add.at(counts, (ar, grid[r, (c0 + dc) % w]), 1)
    return (counts / window**2).astype(np.float32)


def rejection_baseline(continent: str, n: int, seed: int, exclude_ice: bool) -> int:
    rng = np.random.default_rng(seed)
    k, have, drawn = CONTINENTS.index(continent), 0, 0
    while have < n:
        lat, lon = sphere_points(max(10_000, 20 * (n - have)), rng)
        ok = continent_index(lat, lon) == k
        code = landcover_of(lat, lon)
        ok &= code != 0
        if exclude_ice:
            ok &= code != 15
        have += int(ok.sum())
        drawn += lat.size
    return drawn


def run(quick: bool = False) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    n_sample = 10_000 if quick else 100_000
    repeats = 1 if quick else 2
    lat, lon = sphere_points(n, np.random.default_rng(0))
    annotate(lat[:10], lon[:10])  # load the layers outside the timings
    landcover_fractions(lat[:10], lon[:10])
    rows: list[dict] = []

    def row(name, value, target, baseline=None, note=""):
        rows.append(
            {
                "benchmark": name,
                "value": round(value, 4),
                "unit": "s",
                "baseline": None if baseline is None else round(baseline, 4),
                "ratio": None if baseline is None else round(baseline / value, 2),
                "target": target,
                "note": note,
            }
        )

    target = "< 2 s per 1M points, one core" if not quick else "< 0.2 s per 100k points"
    t_fast, cont = _best(lambda: continent_index(lat, lon), repeats)
    tenth = slice(0, n // 10)
    t_base, base = _best(lambda: polygon_baseline(lat[tenth], lon[tenth]), 1)
    agree = float((base == cont[tenth]).mean())
    row(
        f"continent_index, {n:,} points",
        t_fast,
        target,
        t_base * 10,
        f"baseline: STRtree point-in-polygon (timed on {n // 10:,}, x10); agreement {agree:.4f}",
    )
    for name, fn in (("landcover_of", landcover_of), ("climate_of", climate_of), ("biome_of", biome_of)):
        t, _ = _best(lambda fn=fn: fn(lat, lon), repeats)
        row(f"{name}, {n:,} points", t, target)
    t, _ = _best(lambda: annotate(lat, lon), repeats)
    row(
        f"annotate (all four), {n:,} points", t, target, note="continent, land cover, climate, biome together"
    )
    t_fast, frac = _best(lambda: landcover_fractions(lat, lon, window=7), repeats)
    t_base, ref = _best(lambda: fractions_baseline(lat[tenth], lon[tenth]), 1)
    same = bool(np.allclose(ref, frac[tenth], atol=1e-6))
    row(
        f"landcover_fractions window 7, {n:,} points",
        t_fast,
        target,
        t_base * 10,
        f"baseline: 49-offset np.add.at loop (timed on {n // 10:,}, x10); equal results: {same}",
    )

    for continent in CONTINENTS:
        keep_ice = continent == "Antarctica"
        t, _ = _best(
            lambda c=continent, k=keep_ice: sample_locations(c, n_sample, seed=0, exclude_ice=not k), repeats
        )
        t_base, drawn = _best(
            lambda c=continent, k=keep_ice: rejection_baseline(c, n_sample // 10, 0, exclude_ice=not k), 1
        )
        row(
            f"sample_locations {continent}, {n_sample:,} land points",
            t,
            "< 5 s per 100k points",
            t_base * 10,
            f"baseline: sphere rejection sampling ({drawn:,} draws for {n_sample // 10:,}, x10)"
            + ("; ice kept" if keep_ice else ""),
        )
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
