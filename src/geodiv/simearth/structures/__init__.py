"""Structures: spatial objects and arrangements painted over the landscape (fields, settlements, infrastructure ...).

Each of the ``STRUCTURES`` has a generator with documented geometry in pixels at 10 m (docs/simearth.md gives the
sources of every number). A generator paints one structure centred on a given pixel over the landscape that
``layout.build_layout`` made for the location, using the shipped materials (``layout.MATERIALS``). Where a
structure occurs, and how often, is ``prevalence``: a function of the real layers geodiv ships (land-cover
fractions of the window, Koppen-Geiger climate, continent, coastal cells) and of cited real-world facts; never of
any study outcome.

Arrangement, not material, tells most classes apart: ``ARRANGEMENT_GROUPS`` gathers classes that draw the same
materials from the same distributions and differ mainly in geometry (centre pivots vs rectangular field mosaics vs
terraces of the same crops, grid vs organic settlements, meandering vs braided rivers, runway vs highway, ...).
Inside a group, the area share of each material follows one distribution (``shares``, drawn once per scene) that
each class realises with its own geometry. Crop states follow a per-scene season draw, street surfaces the region,
the background the location.

One module per part: ``catalogue`` (the classes, their groups and ``Site``), ``geometry`` (the helpers the
generators share), ``shares`` (each group's area shares), the generators by theme (``farming``, ``infrastructure``, ``settlements``, ``water``,
``forest``) and ``prevalence`` (where and how often). This module gathers the generators and paints one.
"""

from __future__ import annotations

from collections.abc import Callable

from geodiv.simearth.layout import Context, _Builder
from geodiv.simearth.structures import farming, forest, infrastructure, settlements, water
from geodiv.simearth.structures.catalogue import (
    ARRANGEMENT_GROUPS,
    PIXEL_KM2,
    SETTLEMENTS,
    STRUCTURES,
    S,
    Site,
)
from geodiv.simearth.structures.prevalence import (
    draw_structure,
    prevalence,
    prevalence_at,
    structure_probability,
)

__all__ = [
    "ARRANGEMENT_GROUPS", "GENERATORS", "PIXEL_KM2", "S", "SETTLEMENTS", "STRUCTURES", "Site", "draw_structure",
    "paint", "prevalence", "prevalence_at", "structure_probability",
]

#: The modules that hold the generators, one per theme.
_THEMES = (farming, infrastructure, settlements, water, forest)

#: Generator of each structure (the function of that name in its theme's module), in ``STRUCTURES`` order.
GENERATORS: dict[str, Callable[[_Builder, Context, Site, tuple[float, float]], None]] = {
    name: next(getattr(theme, name) for theme in _THEMES if hasattr(theme, name)) for name in STRUCTURES
}


def paint(name: str, b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Paint structure ``name`` centred on pixel ``centre`` (row, col) into the builder."""
    GENERATORS[name](b, ctx, site, centre)
