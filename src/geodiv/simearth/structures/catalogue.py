"""The structure classes, their groups, and the site facts their prevalence depends on."""

from __future__ import annotations

from dataclasses import dataclass

#: Structure classes (the ``scene`` task's classes, in this order).
STRUCTURES: tuple[str, ...] = (
    # farming
    "centre_pivot", "field_mosaic_large", "field_mosaic_small", "terraces", "orchard", "plantation", "greenhouses",
    # infrastructure
    "airport", "highway", "road_interchange", "port", "open_pit_mine", "solar_farm",
    # settlements
    "dense_urban_grid", "informal_settlement", "suburban", "village",
    # water
    "reservoir_dam", "meandering_river", "braided_river", "aquaculture_ponds", "salt_pans",
    # forest
    "clear_cuts", "shifting_cultivation",
)
S = {name: i for i, name in enumerate(STRUCTURES)}
#: Settlement morphologies (the ``settlement`` task regresses their buildings per km^2).
SETTLEMENTS: tuple[str, ...] = ("dense_urban_grid", "informal_settlement", "suburban", "village")
#: Classes drawn from the same materials (same spectral distributions) that differ in geometry; the area share of
#: each material follows one distribution per group (``shares``; see docs/simearth.md).
ARRANGEMENT_GROUPS: dict[str, tuple[str, ...]] = {
    "crop fields": ("centre_pivot", "field_mosaic_large", "field_mosaic_small", "terraces"),
    "tree crops": ("orchard", "plantation"),
    "forest clearings": ("clear_cuts", "shifting_cultivation"),
    "pavement on grass": ("airport", "highway", "road_interchange"),
    "settlements": SETTLEMENTS,
    "rivers": ("meandering_river", "braided_river"),
    "rectangular ponds": ("aquaculture_ponds", "salt_pans"),
}
#: Pixel area at 10 m, in km^2.
PIXEL_KM2 = 1e-4


@dataclass(frozen=True)
class Site:
    """What the prevalence of structures depends on, besides the window's land cover."""

    climate: str | None = None
    continent: str | None = None
    coastal: bool = False

