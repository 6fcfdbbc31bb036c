"""Per-region evaluation plan: which training subsets get a head, and which test subsets each head is scored on.

``by=None``: one head trained on the whole training split, scored on the whole test split (region "global").
``by="continent"``: the global head is also scored on each continent's test subset, and a head is trained on each
continent's training (and validation) subset and scored on the global test set and every continent's test subset:
the full train-on-region x test-on-region matrix. Continents are those that occur in any split of the task;
a continent with no test samples is reported with n = 0 and a null value rather than dropped, and a continent
with no training samples has no row in the matrix (there is nothing to train on) but still a test column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodiv.errors import InputError
from geodiv.geo import CONTINENTS, continent_of

GLOBAL = "global"


@dataclass(frozen=True)
class HeadSpec:
    """One head to train: its training region and the rows of train / val it sees."""

    train_region: str
    train_idx: np.ndarray
    val_idx: np.ndarray


@dataclass(frozen=True)
class RegionPlan:
    heads: list[HeadSpec]
    test_regions: list[tuple[str, np.ndarray]]  # (region, test rows); "global" first


def plan_regions(
    train_continent: np.ndarray,
    val_continent: np.ndarray,
    test_continent: np.ndarray,
    *,
    by: str | None,
    matrix: bool = True,
    task_name: str = "task",
) -> RegionPlan:
    """Build the heads and test subsets for ``by`` (None or "continent"); continent arrays use "" for unknown."""
    all_train = np.arange(len(train_continent))
    all_val = np.arange(len(val_continent))
    heads = [HeadSpec(GLOBAL, all_train, all_val)]
    tests: list[tuple[str, np.ndarray]] = [(GLOBAL, np.arange(len(test_continent)))]
    if by is None:
        return RegionPlan(heads, tests)
    if by != "continent":
        raise InputError(f"unknown grouping by={by!r}; use by='continent' (or none for the global result)")
    known = [np.asarray(c, dtype=str) for c in (train_continent, val_continent, test_continent)]
    if not any((c != "").any() for c in known):
        raise InputError(
            f"task {task_name!r} carries no location (no sample has a continent or lat/lon), so it cannot be "
            "evaluated per continent; run without --by, or give the task's samples coordinates"
        )
    present = set(np.concatenate(known).tolist()) - {""}
    # Continents in report order (geodiv.geo.CONTINENTS), then any other names alphabetically.
    order = [c for c in CONTINENTS if c in present] + sorted(present - set(CONTINENTS))
    for c in order:
        tests.append((c, np.nonzero(known[2] == c)[0]))
    if matrix:
        for c in order:
            train_idx = np.nonzero(known[0] == c)[0]
            if train_idx.size:
                heads.append(HeadSpec(c, train_idx, np.nonzero(known[1] == c)[0]))
    return RegionPlan(heads, tests)


def fill_continents(continent: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Fill unknown continents ("") from lat/lon where the sample has coordinates (geodiv.geo.continent_of)."""
    continent = np.asarray(continent, dtype=object)
    missing = (continent == "") & np.isfinite(lat) & np.isfinite(lon)
    if missing.any():
        found = continent_of(lat[missing], lon[missing])
        continent[missing] = ["" if v is None else str(v) for v in found]
    return continent.astype(str)
