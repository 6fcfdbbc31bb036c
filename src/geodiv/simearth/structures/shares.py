"""Area shares of the materials inside each arrangement group: one distribution per group, drawn once per scene.

Every class of an arrangement group (``catalogue.ARRANGEMENT_GROUPS``) draws the area share of each of its
materials with the same function below, from the scene's generator, and realises the drawn shares with its own
geometry (runway vs carriageway widths, channel width vs thread density, building size and street layout ...). So
the share of the patch each material covers follows one distribution inside a group and per-band statistics cannot
tell the group's classes apart by it; what is left to tell them apart is the arrangement. The ranges are plausible
real ranges that every class of the group can realise with its documented geometry (docs/simearth.md, "Arrangement
groups"); they were never chosen by looking at any encoder's or pretraining region's score.

Shares are of the structure's footprint (``geometry.EXTENT``, area structures) or of the patch (line structures:
rivers, roads, airports), as each function says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geodiv.simearth.layout import Context


def take_by_area(rng: np.random.Generator, areas: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """State (0 .. len(shares) - 1) of each item (parcel, block, pond ...) so that the states' total areas follow
    ``shares`` (summing to 1) of the items' total area: the items, in random order, fill the states one after the
    other, each going to the state its area's midpoint falls in (unbiased; exact up to one item per state)."""
    areas = np.asarray(areas, np.float64)
    order = rng.permutation(len(areas))
    a = areas[order]
    mid = np.cumsum(a) - a / 2
    bounds = np.cumsum(np.asarray(shares, np.float64))[:-1] * a.sum()
    state = np.empty(len(areas), np.int64)
    state[order] = np.searchsorted(bounds, mid, side="right")
    return state


def states_by_area(rng: np.random.Generator, ids: np.ndarray, mask: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """``take_by_area`` for the items ``ids`` (compact ints, an image of item ids) by their area inside ``mask``:
    the state of each item id."""
    return take_by_area(rng, np.bincount(ids[mask], minlength=int(ids.max()) + 1), shares)


def season_green(rng: np.random.Generator, ctx: Context) -> float:
    """Share of green crop parcels in this scene: a season draw (0 = dormant/harvest .. 1 = peak growth) limited
    by the climate's wetness. The same for every crop structure, so it never tells them apart."""
    return float((0.1 + 0.8 * rng.random()) * (0.5 + 0.5 * ctx.wetness))


@dataclass(frozen=True)
class CropShares:
    """Crop fields (of the farm's footprint): grass (margins, risers, pasture parcels), then the crop states of the
    rest (green, senescent, bare soil: the season draw)."""

    grass: float
    states: tuple[float, float, float]


def crop_shares(rng: np.random.Generator, ctx: Context) -> CropShares:
    """Grass ~ U(0, 0.3) of the footprint (field margins and grass strips cover a few to ~30 % of small-field
    landscapes); crop states by the season draw, senescent and bare alike."""
    grass = float(rng.uniform(0.0, 0.3))
    green = season_green(rng, ctx)
    return CropShares(grass, (green, (1 - green) / 2, (1 - green) / 2))


@dataclass(frozen=True)
class TreeCropShares:
    """Tree crops (of the footprint): tree canopy, and the bare-soil share of the ground that is not canopy
    (the rest of the ground is grass)."""

    trees: float
    bare_ground: float


def tree_crop_shares(rng: np.random.Generator) -> TreeCropShares:
    """Canopy ~ U(0.3, 0.7) of the footprint (wide orchards to estates with young and replanted blocks); the
    ground between, bare (tilled, herbicided) ~ U(0, 1), else grass."""
    return TreeCropShares(float(rng.uniform(0.3, 0.7)), float(rng.random()))


#: Clearing states (bare soil, regrowing grass, shrub, char) by area, the same in clear-cuts and shifting cultivation.
CLEARING_STATES = (0.35, 0.3, 0.25, 0.1)


def cleared_share(rng: np.random.Generator) -> float:
    """Cleared share of the managed forest's footprint ~ U(0.15, 0.45) (DRC rural complex ~40 %, Molinario et al.;
    clear-cut landscapes in rotation a fifth to a third)."""
    return float(rng.uniform(0.15, 0.45))


@dataclass(frozen=True)
class PavementShares:
    """Pavement on grass (of the patch): pavement and grass."""

    pavement: float
    grass: float


def pavement_shares(rng: np.random.Generator) -> PavementShares:
    """Pavement ~ U(0.07, 0.13) of the patch (at 96 px: 7-12 px of pavement across, a runway with its taxiway, or
    a motorway with frontage roads); grass ~ U(0.2, 0.4) (a runway strip of 140-300 m, ICAO Annex 14; a motorway's
    verges, embankments and median)."""
    return PavementShares(float(rng.uniform(0.07, 0.13)), float(rng.uniform(0.2, 0.4)))


@dataclass(frozen=True)
class SettlementShares:
    """Settlements (of the footprint): roofs and streets; the rest is yards (``settlements._yards``)."""

    roof: float
    street: float


def settlement_shares(rng: np.random.Generator) -> SettlementShares:
    """Roof cover ~ U(0.1, 0.35) of the footprint, streets and yards included (villages and suburbs at the low end,
    dense grids and informal settlements at the high end of real building-coverage ratios); streets ~ U(0.08, 0.2)."""
    return SettlementShares(float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.08, 0.2)))


@dataclass(frozen=True)
class RiverShares:
    """Rivers (of the patch): open water, bars (sand or gravel, ``sand`` of them sand) and grass on bars."""

    water: float
    bars: float
    sand: float
    grass: float


def river_shares(rng: np.random.Generator) -> RiverShares:
    """Water ~ U(0.04, 0.12) of the patch (a 40-110 m wide channel, or threads, across ~1 km); bars ~ U(0.04,
    0.14), sand U(0.4, 1) of them (point bars and braid bars of sand and gravel); grassed bars ~ U(0, 0.05)."""
    return RiverShares(float(rng.uniform(0.04, 0.12)), float(rng.uniform(0.04, 0.14)), float(rng.uniform(0.4, 1.0)),
                       float(rng.uniform(0.0, 0.05)))


def dry_pond_share(rng: np.random.Generator) -> float:
    """Earth (dikes and drained ponds) ~ U(0.1, 0.3) of the pond field's footprint; the rest is pond surface
    (water; salt pans turn part of it into brine and crust, their own material)."""
    return float(rng.uniform(0.1, 0.3))
