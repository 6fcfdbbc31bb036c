"""Where structures occur and how often: the prevalence tables and the per-scene draw."""

from __future__ import annotations

from typing import Any

import numpy as np

from geodiv.simearth.spectra import climate_vigour
from geodiv.simearth.structures.catalogue import STRUCTURES

#: Continent factors (documented with their sources in docs/simearth.md); missing continents take ``default``.
_LARGE_FIELDS = {"North America": 0.9, "Oceania": 0.9, "Europe": 0.6, "South America": 0.6, "Asia": 0.3,
                 "Africa": 0.2, "default": 0.5}
_TERRACES = {"Asia": 0.15, "Africa": 0.03, "South America": 0.03, "default": 0.01}
_GREENHOUSES = {"Asia": 0.004, "default": 0.0005}
_PLANTATIONS = {"Asia": 0.3, "Africa": 0.05, "South America": 0.05, "default": 0.0}
_PAVED_ROADS = {"North America": 2.0, "Europe": 2.0, "default": 0.5}
_MINES = {"Oceania": 3.0, "Asia": 1.5, "North America": 1.5, "South America": 1.5, "Europe": 0.7, "default": 1.0}
_SOLAR = {"Asia": 2.0, "Europe": 2.0, "North America": 1.0, "default": 0.3}
_GRID = {"North America": 0.5, "Oceania": 0.3, "South America": 0.3, "default": 0.2}
_INFORMAL = {"Africa": 0.5, "Asia": 0.3, "South America": 0.3, "default": 0.02}
_SUBURBAN = {"North America": 0.5, "Oceania": 0.6, "Europe": 0.35, "default": 0.15}
_VILLAGES = {"Africa": 1.0, "Asia": 1.0, "Europe": 0.6, "South America": 0.4, "North America": 0.2, "default": 0.1}
_AQUACULTURE = {"Asia": 0.08, "South America": 0.02, "default": 0.003}
_FORESTRY = {"Europe": 1.0, "North America": 1.0, "Oceania": 0.5, "default": 0.2}
_SHIFTING = {"Africa": 1.0, "South America": 0.5, "Asia": 0.5, "default": 0.05}
#: Share of rivers that are braided (multi-threaded) by main climate (Nyberg et al. 2023: 52 % of channel belts
#: by area are multi-threaded globally; the shift towards cold and arid climates is a documented default).
_BRAIDED = {"E": 0.8, "D": 0.6, "B": 0.6, "C": 0.45, "A": 0.35, "default": 0.5}


def _of(table: dict[str, float], key: str) -> float:
    return table.get(key, table["default"])


def _prevalence_one(f: list[float], climate: str, continent: str, coastal: bool) -> list[float]:
    main = climate[:1]
    arid = 1.0 if main == "B" else 0.0
    tropical = 1.0 if main == "A" else 0.0
    medit = 1.0 if climate[:2] == "Cs" else 0.0
    coast = 1.0 if coastal else 0.0
    crop = f[12] + 0.5 * f[14]
    urban, forest, water, wetland = f[13], f[1] + f[2] + f[3] + f[4] + f[5], f[0], f[11]
    grass, shrub, sav, bare = f[10], f[6] + f[7], f[8] + f[9], f[16]
    w = dict.fromkeys(STRUCTURES, 0.0)
    fields = 2.0 * crop
    pivot = 0.3 if arid else 0.1 if (tropical and continent == "South America") else 0.03
    terr = _of(_TERRACES, continent) + 0.04 * medit
    green = _of(_GREENHOUSES, continent) + 0.01 * medit
    orch = 0.02 + 0.08 * medit
    w["centre_pivot"] = (fields + 0.2 * bare + 0.2 * grass) * pivot
    w["terraces"] = fields * terr
    w["greenhouses"] = fields * green
    w["orchard"] = fields * orch
    w["plantation"] = (crop + 0.1 * forest + 0.2 * sav) * tropical * _of(_PLANTATIONS, continent)
    rest = fields * max(0.0, 1.0 - pivot - terr - green - orch)
    large = _of(_LARGE_FIELDS, continent)
    w["field_mosaic_large"] = rest * large
    w["field_mosaic_small"] = rest * (1 - large)
    paved = _of(_PAVED_ROADS, continent)
    w["airport"] = 3e-4 + 0.01 * urban
    w["highway"] = 0.02 * paved * (0.3 + crop + 2 * urban)
    w["road_interchange"] = 0.004 * paved * (5 * urban + 0.3 * crop)
    w["port"] = coast * (0.05 * urban + 0.002)
    w["open_pit_mine"] = 1.5e-3 * (0.3 + bare + shrub + grass) * _of(_MINES, continent)
    w["solar_farm"] = 5e-4 * (crop + 0.5 * (bare + grass + urban)) * _of(_SOLAR, continent)
    towns = 3.0 * urban
    w["dense_urban_grid"] = towns * _of(_GRID, continent)
    w["informal_settlement"] = towns * _of(_INFORMAL, continent)
    w["suburban"] = towns * _of(_SUBURBAN, continent)
    w["village"] = 0.4 * (crop + 0.3 * grass + 0.3 * sav) * _of(_VILLAGES, continent)
    rivers = 0.25 * climate_vigour(climate or None)[1] * (1 + 3 * (water + wetland))
    braided = _of(_BRAIDED, main)
    w["meandering_river"] = rivers * (1 - braided)
    w["braided_river"] = rivers * braided
    w["reservoir_dam"] = 0.003 * (1 + 5 * water) * (1 - 0.7 * coast)
    w["aquaculture_ponds"] = coast * (crop + wetland + water + 0.1) * _of(_AQUACULTURE, continent)
    w["salt_pans"] = coast * (0.02 * arid + 0.002)
    w["clear_cuts"] = forest * 0.08 * _of(_FORESTRY, continent)
    w["shifting_cultivation"] = (forest + 0.5 * sav) * 0.08 * (0.1 + 0.9 * tropical) * _of(_SHIFTING, continent)
    # Land only, and not on ice: none in a window without land (open water), fewer as snow and ice cover it.
    ice_free = max(0.0, 1.0 - f[15]) if sum(f[1:]) > 0 else 0.0
    return [w[name] * ice_free for name in STRUCTURES]


def prevalence_at(fractions: np.ndarray, climate: str | None, continent: str | None, coastal: bool) -> np.ndarray:
    """``prevalence`` of one location (a (len(STRUCTURES),) array), without the batch bookkeeping."""
    return np.array(_prevalence_one(np.asarray(fractions, np.float64).tolist(), climate or "", continent or "",
                                    bool(coastal)))


def prevalence(fractions: Any, climate: Any, continent: Any, coastal: Any) -> np.ndarray:
    """Expected number of each structure in a ~1 km^2 scene, (n, len(STRUCTURES)), for n locations.

    ``fractions`` (n, 17) IGBP fractions of the window; ``climate`` Koppen codes; ``continent`` names (None at
    sea); ``coastal`` whether the cell lies within ~10 km of the ocean. Every factor and its source is listed in
    docs/simearth.md ("Structures: where and how often"). Plain floats per location: one scene costs ~20 us.
    """
    f = np.atleast_2d(np.asarray(fractions, np.float64)).tolist()
    n = len(f)
    clim = np.broadcast_to(np.asarray(climate, object), (n,))
    cont = np.broadcast_to(np.asarray(continent, object), (n,))
    coast = np.broadcast_to(np.asarray(coastal, bool), (n,))
    return np.array([_prevalence_one(f[i], str(clim[i] or ""), str(cont[i] or ""), bool(coast[i]))
                     for i in range(n)], np.float64).reshape(n, len(STRUCTURES))


def structure_probability(weights: np.ndarray) -> np.ndarray:
    """Probability that a scene holds a structure: 1 - exp(-expected count) (a Poisson scene)."""
    return 1.0 - np.exp(-np.asarray(weights).sum(axis=-1))


def draw_structure(rng: np.random.Generator, weights: np.ndarray) -> int | None:
    """The structure of one scene (index into STRUCTURES), or None: present with ``structure_probability``, of a
    kind in proportion to ``weights``."""
    cum = np.cumsum(weights)
    total = float(cum[-1])
    if total <= 0 or rng.random() >= 1.0 - np.exp(-total):
        return None
    return int(min(np.searchsorted(cum, rng.random() * total, side="right"), len(weights) - 1))
