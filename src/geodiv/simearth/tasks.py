"""Downstream task labels of a simulated patch (the evaluate stage picks the locations and splits).

- ``landcover``: the dominant land-cover class of the patch's pixels, over ``LANDCOVER_CLASSES`` (11 groups of
  ``SIM_CLASSES``); classification; accuracy and macro-F1.
- ``treecover``: the fraction of tree pixels (any forest type, including savanna and riverside trees); regression; R^2.
- ``foresttype``: per-pixel forest type, ``FOREST_TYPES`` (non-forest, four leaf types x phenology, mixed);
  segmentation; F1 (macro over classes present).
- ``builtup``: the fraction of built-up pixels (buildings and roads); regression; R^2 (a population-density proxy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geodiv.errors import InputError
from geodiv.simearth.landscape import BUILT_CODES, FOREST_CODES, SIM_CLASSES

TASKS: tuple[str, ...] = ("landcover", "treecover", "foresttype", "builtup")

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
    classes = _classes_of(patch)
    if name == "landcover":
        counts = np.bincount(_TO_LANDCOVER[classes].ravel(), minlength=len(LANDCOVER_CLASSES))
        return int(np.argmax(counts))
    if name == "treecover":
        return float(np.isin(classes, FOREST_CODES).mean())
    if name == "builtup":
        return float(np.isin(classes, BUILT_CODES).mean())
    return _TO_FOREST[classes]
