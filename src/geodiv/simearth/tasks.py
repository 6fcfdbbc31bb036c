"""Downstream task labels of a simulated patch (the evaluate stage picks the locations and splits).

- ``landcover``: the dominant land-cover class of the patch's pixels, over ``LANDCOVER_CLASSES`` (11 groups of
  ``SIM_CLASSES``); classification; accuracy and macro-F1.
- ``treecover``: the fraction of tree pixels (any forest type, including savanna and riverside trees); regression; R^2.
- ``foresttype``: per-pixel forest type, ``FOREST_TYPES`` (non-forest, four leaf types x phenology, mixed);
  segmentation; F1 (macro over classes present).
- ``builtup``: the fraction of built-up pixels (buildings and roads); regression; R^2 (a population-density proxy).

These four are the *composition tasks*: each is a function of the patch's class composition. Two *structure
tasks* need the arrangement of pixels:

- ``scene`` (FMoW-like): the structure centred on the patch, one of ``STRUCTURES`` (24 classes); classification;
  accuracy and macro-F1. Needs the patch's metadata (``Patch.meta["structure"]``).
- ``settlement``: buildings per km^2 of the patch (distinct roofs, ``Patch.meta["buildings_per_km2"]``), on
  patches centred on a settlement (``SETTLEMENTS``); regression; R^2 (MOSAIKS-population-like).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geodiv.errors import InputError
from geodiv.simearth.layout import BUILT_CODES, FOREST_CODES, SIM_CLASSES
from geodiv.simearth.structures import ARRANGEMENT_GROUPS, SETTLEMENTS, STRUCTURES

#: Tasks that are functions of the patch's class composition.
COMPOSITION_TASKS: tuple[str, ...] = ("landcover", "treecover", "foresttype", "builtup")
#: Tasks that need the arrangement: the structure at the centre, and settlement density.
STRUCTURE_TASKS: tuple[str, ...] = ("scene", "settlement")
TASKS: tuple[str, ...] = COMPOSITION_TASKS + STRUCTURE_TASKS
#: Structure classes each structure task's patches are centred on (its stratification classes).
TASK_STRUCTURES: dict[str, tuple[str, ...]] = {"scene": STRUCTURES, "settlement": SETTLEMENTS}

#: Land-cover groups of the ``landcover`` task and the SIM_CLASSES each one gathers.
LANDCOVER_GROUPS: dict[str, tuple[str, ...]] = {
    "water": ("water",),
    "evergreen_forest": ("needleleaf_evergreen", "broadleaf_evergreen"),
    "deciduous_forest": ("needleleaf_deciduous", "broadleaf_deciduous"),
    "mixed_forest": ("mixed_forest",),
    "shrubland": ("shrubland",),
    "grassland": ("grassland",),
    "wetland": ("wetland",),
    "cropland": ("cropland",),
    "urban": ("built_up", "road"),
    "barren": ("barren",),
    "snow_ice": ("snow_ice",),
}
LANDCOVER_CLASSES: tuple[str, ...] = tuple(LANDCOVER_GROUPS)
FOREST_TYPES: tuple[str, ...] = (
    "non_forest", "needleleaf_evergreen", "broadleaf_evergreen", "needleleaf_deciduous", "broadleaf_deciduous",
    "mixed",
)

#: SIM_CLASSES code -> landcover group index / forest-type index.
_TO_LANDCOVER = np.zeros(len(SIM_CLASSES), np.int64)
for _gi, _members in enumerate(LANDCOVER_GROUPS.values()):
    for _m in _members:
        _TO_LANDCOVER[SIM_CLASSES.index(_m)] = _gi
_TO_FOREST = np.zeros(len(SIM_CLASSES), np.uint8)
for _fi, _code in enumerate(FOREST_CODES, start=1):
    _TO_FOREST[_code] = _fi

TASK_SPECS: dict[str, dict[str, Any]] = {
    "landcover": {"type": "classification", "classes": LANDCOVER_CLASSES, "metric": ("accuracy", "macro_f1"),
                  "description": "dominant land-cover class of the patch's pixels"},
    "treecover": {"type": "regression", "classes": None, "metric": ("r2",),
                  "description": "fraction of the patch's pixels covered by trees"},
    "foresttype": {"type": "segmentation", "classes": FOREST_TYPES, "metric": ("f1",),
                   "description": "per-pixel forest type (non-forest, leaf type x phenology, mixed)"},
    "builtup": {"type": "regression", "classes": None, "metric": ("r2",),
                "description": "fraction of the patch's pixels that are buildings or roads"},
    "scene": {"type": "classification", "classes": STRUCTURES, "metric": ("accuracy", "macro_f1"),
              "description": "structure at the patch centre (fields, settlements, infrastructure, water, forest)",
              # look-alike classes (same materials and area shares, other geometry): the group metrics split the
              # accuracy into telling the groups apart and telling a group's members apart
              "class_groups": {g: list(m) for g, m in ARRANGEMENT_GROUPS.items()}},
    "settlement": {"type": "regression", "classes": None, "metric": ("r2",),
                   "description": "buildings per km^2 of a patch centred on a settlement"},
}


def _classes_of(patch: Any) -> np.ndarray:
    classes = patch.classes if hasattr(patch, "classes") else patch
    classes = np.asarray(classes)
    if classes.ndim != 2 or classes.dtype != np.uint8 or classes.size == 0:
        raise InputError("task_target needs a Patch (or its uint8 (H, W) class map)")
    if int(classes.max()) >= len(SIM_CLASSES):
        raise InputError(f"class map holds code {int(classes.max())}; SIM_CLASSES has {len(SIM_CLASSES)} codes")
    return classes


def task_target(name: str, patch: Any) -> int | float | np.ndarray:
    """The label of ``patch`` for task ``name`` (see module docstring)."""
    if name not in TASK_SPECS:
        raise InputError(f"unknown task {name!r}; SimEarth tasks are: {', '.join(TASKS)}")
    if name in STRUCTURE_TASKS:
        return _structure_target(name, patch)
    classes = _classes_of(patch)
    if name == "landcover":
        counts = np.bincount(_TO_LANDCOVER[classes].ravel(), minlength=len(LANDCOVER_CLASSES))
        return int(np.argmax(counts))
    if name == "treecover":
        return float(np.isin(classes, FOREST_CODES).mean())
    if name == "builtup":
        return float(np.isin(classes, BUILT_CODES).mean())
    return _TO_FOREST[classes]


def _structure_target(name: str, patch: Any) -> int | float:
    meta = getattr(patch, "meta", None)
    if not isinstance(meta, dict) or "structure" not in meta:
        raise InputError(f"task {name!r} needs a simulated Patch (its meta names the structure), not a class map")
    kind = meta["structure"]
    if kind not in TASK_STRUCTURES[name]:
        raise InputError(f"task {name!r} is defined on patches centred on one of {', '.join(TASK_STRUCTURES[name])}; "
                         f"this patch holds {kind!r} (simulate it with structure=...)")
    if name == "scene":
        return STRUCTURES.index(kind)
    return float(meta["buildings_per_km2"])
