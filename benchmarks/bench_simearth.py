"""SimEarth speed: simulated 96 x 96 x 13 patches per second on one core, with a profile of where time goes.

Target: >= 200 patches/s per core. ``run(quick)`` returns the benchmark rows; ``python benchmarks/bench_simearth.py``
prints them and the top of the profile.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time

import numpy as np

from geodiv.simearth.structures import STRUCTURES
from geodiv.simearth.world import SimConfig, patch_rng, render_patch

#: A spread of landscapes (IGBP fractions, climate, lat, lon) so the mix of processes is representative.
SCENES = [
    ({"Croplands": 0.7, "Deciduous Broadleaf Forests": 0.2, "Urban and Built-up Lands": 0.1}, "Cfb", 48.8, 2.3),
    ({"Barren": 0.9, "Open Shrublands": 0.1}, "BWh", 23.0, 10.0),
    ({"Evergreen Needleleaf Forests": 0.8, "Water Bodies": 0.1, "Permanent Wetlands": 0.1}, "Dfc", 62.0, 25.0),
    ({"Savannas": 0.6, "Woody Savannas": 0.3, "Grasslands": 0.1}, "Aw", -12.0, 30.0),
    ({"Urban and Built-up Lands": 0.8, "Croplands": 0.2}, "Cfa", 35.0, 139.0),
    ({"Evergreen Broadleaf Forests": 1.0}, "Af", -3.0, -60.0),
    ({"Grasslands": 0.6, "Cropland/Natural Vegetation Mosaics": 0.4}, "BSk", 45.0, 100.0),
    ({"Mixed Forests": 0.5, "Deciduous Broadleaf Forests": 0.5}, "Dfb", 46.0, -75.0),
]


#: Continent of each scene (feeds the prevalence of structures).
CONTINENTS = ["Europe", "Africa", "Europe", "Africa", "Asia", "South America", "Asia", "North America"]


def _render(n: int, size: int = 96, structure: str | None = None, config: SimConfig | None = None) -> float:
    """CPU seconds (process time, i.e. per core, robust to other load) to render n patches (geography given; the
    lookup is timed separately by geo's benchmark). ``structure`` forces one at the centre of every patch."""
    t = time.process_time()
    for i in range(n):
        frac, climate, lat, lon = SCENES[i % len(SCENES)]
        render_patch(frac, climate, lat, lon, patch_rng(i, lat, lon), size=size, config=config,
                     continent=CONTINENTS[i % len(SCENES)], coastal=i % 3 == 0, structure=structure)
    return time.process_time() - t


def profile_top(n: int = 80, lines: int = 15) -> str:
    prof = cProfile.Profile()
    prof.enable()
    _render(n)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(lines)
    return buf.getvalue()


def run(quick: bool = False) -> list[dict]:
    _render(len(SCENES))  # warm up: library, field bank, noise bank
    n = 80 if quick else 400
    repeats = 2 if quick else 3
    best = min(_render(n) for _ in range(repeats))
    rate = n / best
    # Baseline, measured in the same run: the unavoidable cost of producing the same array, i.e. 13 x 96 x 96
    # float32 Gaussian noise quantised to uint16 (what any simulator must at least pay per patch).
    rng = np.random.default_rng(0)
    t = time.process_time()
    for _ in range(n):
        np.clip(rng.standard_normal((13, 96, 96), dtype=np.float32) * 1000 + 1000, 0, 65535).astype(np.uint16)
    base = n / (time.process_time() - t)
    rows = [{
        "benchmark": "simearth.render_patch 96x96x13",
        "value": round(rate, 1), "unit": "patches/s (1 core)",
        "baseline": round(base, 1), "ratio": round(rate / base, 3),
        "target": ">= 200 patches/s per core",
        "note": f"best of {repeats} x {n} patches over {len(SCENES)} landscapes, structures drawn by their "
                "prevalence; baseline = Gaussian noise array of the same shape quantised to uint16",
    }]
    # Each structure forced at the centre of every patch, against the same landscapes without any structure.
    m = 16 if quick else 80
    plain = m / min(_render(m, config=SimConfig(structures=False)) for _ in range(repeats))
    for name in STRUCTURES:
        r = m / min(_render(m, structure=name) for _ in range(repeats))
        rows.append({
            "benchmark": f"simearth.render_patch 96x96x13 + {name}",
            "value": round(r, 1), "unit": "patches/s (1 core)",
            "baseline": round(plain, 1), "ratio": round(r / plain, 3),
            "target": ">= 200 patches/s per core",
            "note": f"best of {repeats} x {m} patches, {name} at the centre of each; baseline = the same "
                    "landscapes without structures",
        })
    return rows


def details() -> str:
    """The top of a cProfile of rendering, sorted by own time (BENCHMARKS.md shows it under the table)."""
    return profile_top()


if __name__ == "__main__":
    import json
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for row in run(quick=False):
        print(json.dumps(row))
    print(profile_top())
