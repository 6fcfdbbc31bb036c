"""Biomes: the climate x land-cover crosswalk, and user-supplied layers (vector and raster)."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.geo import BIOMES, KOPPEN_ZONES, BiomeLayer, biome_of, climate_of, crosswalk_biome, landcover_of
from geodiv.geo.biome import _lookup_table, biome_index_flat


def test_fourteen_resolve_biomes():
    assert len(BIOMES) == len(set(BIOMES)) == 14
    assert BIOMES[0] == "Tropical & Subtropical Moist Broadleaf Forests"
    assert BIOMES[5] == "Boreal Forests/Taiga" and BIOMES[13] == "Mangroves"


@pytest.mark.parametrize(
    ("zone", "igbp", "abs_lat", "coastal", "biome"),
    [
        ("Af", 2, 0, False, "Tropical & Subtropical Moist Broadleaf Forests"),
        ("Af", 11, 2, True, "Mangroves"),
        ("Af", 11, 2, False, "Flooded Grasslands & Savannas"),
        ("Aw", 9, 10, False, "Tropical & Subtropical Grasslands, Savannas & Shrublands"),
        ("Aw", 4, 15, False, "Tropical & Subtropical Dry Broadleaf Forests"),
        ("Aw", 1, 15, False, "Tropical & Subtropical Coniferous Forests"),
        ("BWh", 16, 23, False, "Deserts & Xeric Shrublands"),
        ("BSk", 10, 45, False, "Temperate Grasslands, Savannas & Shrublands"),
        ("BSk", 10, 18, False, "Montane Grasslands & Shrublands"),
        ("Csa", 6, 38, False, "Mediterranean Forests, Woodlands & Scrub"),
        ("Csb", 1, 44, False, "Temperate Conifer Forests"),
        ("Cfb", 5, 50, False, "Temperate Broadleaf & Mixed Forests"),
        ("Cfb", 12, 50, False, "Temperate Broadleaf & Mixed Forests"),
        ("Cfb", 10, 5, False, "Montane Grasslands & Shrublands"),
        ("Cwb", 10, 20, False, "Montane Grasslands & Shrublands"),
        ("Dfb", 1, 45, False, "Temperate Conifer Forests"),
        ("Dfb", 1, 60, False, "Boreal Forests/Taiga"),
        ("Dfc", 8, 63, False, "Boreal Forests/Taiga"),
        ("Dwc", 10, 33, False, "Montane Grasslands & Shrublands"),
        ("ET", 10, 70, False, "Tundra"),
        ("ET", 10, 15, False, "Montane Grasslands & Shrublands"),
        ("EF", 15, 80, False, "Tundra"),
        ("Cfb", 15, 46, False, "Tundra"),
    ],
)
def test_crosswalk_rules(zone, igbp, abs_lat, coastal, biome):
    assert crosswalk_biome(zone, igbp, abs_lat, coastal) == biome


def test_crosswalk_covers_every_input_and_reaches_every_biome():
    table = _lookup_table()
    assert table.shape[:2] == (len(KOPPEN_ZONES), 17)
    assert (table >= 0).all() and set(np.unique(table)) == set(range(14))


def test_every_biome_occurs_on_earth():
    rng = np.random.default_rng(0)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 200000)))
    lon = rng.uniform(-180, 180, 200000)
    biome = biome_of(lat, lon)
    assert set(biome[biome != None]) == set(BIOMES)  # noqa: E711
    assert ((biome == None) == (climate_of(lat, lon) == None)).all()  # noqa: E711


def test_lookup_matches_the_scalar_rule():
    from geodiv.geo.regions import coastal_mask

    rng = np.random.default_rng(5)
    lat, lon = rng.uniform(-60, 75, 300), rng.uniform(-180, 180, 300)
    got = biome_of(lat, lon)
    zones, codes = climate_of(lat, lon), landcover_of(lat, lon)
    coast = coastal_mask()[
        np.minimum(((90 - lat) * 20).astype(int), 3599), ((lon + 180) * 20).astype(int) % 7200
    ]
    for i in range(300):
        want = (
            None
            if zones[i] is None
            else crosswalk_biome(zones[i], int(codes[i]), abs(lat[i]), bool(coast[i]))
        )
        assert got[i] == want


@pytest.mark.parametrize(
    ("place", "lat", "lon", "biome"),
    [
        ("Congo basin", 0.0, 22.0, "Tropical & Subtropical Moist Broadleaf Forests"),
        ("Borneo", 1.0, 114.0, "Tropical & Subtropical Moist Broadleaf Forests"),
        ("Serengeti", -2.33, 34.83, "Tropical & Subtropical Grasslands, Savannas & Shrublands"),
        ("Sahara", 23.0, 12.0, "Deserts & Xeric Shrublands"),
        ("Yakutia taiga", 63.0, 125.0, "Boreal Forests/Taiga"),
        ("Mongolian steppe", 47.0, 105.0, "Temperate Grasslands, Savannas & Shrublands"),
        ("Tibetan plateau", 33.0, 88.0, "Montane Grasslands & Shrublands"),
        ("Altiplano", -17.0, -68.5, "Montane Grasslands & Shrublands"),
        ("Oregon Cascades", 44.0, -122.0, "Temperate Conifer Forests"),
        ("Cape Town", -33.92, 18.42, "Mediterranean Forests, Woodlands & Scrub"),
        ("Greenland ice sheet", 72.0, -40.0, "Tundra"),
        ("Paris", 48.85, 2.35, "Temperate Broadleaf & Mixed Forests"),
    ],
)
def test_hand_checked_biomes(place, lat, lon, biome):
    assert biome_of(lat, lon).item() == biome, place


def test_ocean_has_no_biome():
    assert biome_of(0.0, -140.0).item() is None
    assert biome_index_flat(np.array([0.0]), np.array([-140.0]))[0] == -1


# ------------------------------------------------------------------------------------------ user layers
POINTS = ([50.0, 46.5, 23.0, 0.0, -10.0], [10.0, 10.0, 10.0, 0.0, 10.0])


def test_vector_layer_default_column(biome_layers):
    got = biome_of(*POINTS, layer=biome_layers["vector"])
    # Alps polygon (listed first) wins over Central Europe and says N/A (RESOLVE's Rock and Ice) -> None.
    assert got.tolist() == [
        "Temperate Broadleaf & Mixed Forests",
        None,
        "Deserts & Xeric Shrublands",
        None,
        None,
    ]


def test_vector_layer_numbers_named_column_and_reprojection(biome_layers):
    by_number = biome_of(*POINTS, layer={"path": str(biome_layers["vector"]), "column": "BIOME_NUM"})
    assert by_number.tolist()[:3] == [BIOMES[3], BIOMES[9], BIOMES[12]]
    free_text = biome_of(*POINTS, layer=BiomeLayer(biome_layers["vector"], "label"))
    assert free_text.tolist() == ["central europe", "alps", "sahara", None, None]
    mercator = biome_of(*POINTS, layer=biome_layers["vector_3857"])
    assert mercator.tolist() == biome_of(*POINTS, layer=biome_layers["vector"]).tolist()


def test_raster_layer(biome_layers):
    got = biome_of([25.0, 65.0, 0.0, 25.0], [90.0, 45.0, 0.0, 79.5], layer=biome_layers["raster"])
    assert got.tolist() == ["Mangroves", "Boreal Forests/Taiga", None, None]


def test_layer_errors(biome_layers, tmp_path):
    with pytest.raises(InputError, match="no column 'BIOME'.*columns are"):
        biome_of(0.0, 0.0, layer={"path": biome_layers["vector"], "column": "BIOME"})
    with pytest.raises(InputError, match="not found"):
        biome_of(0.0, 0.0, layer=tmp_path / "missing.gpkg")
    with pytest.raises(InputError, match="must be a file path"):
        biome_of(0.0, 0.0, layer=42)
    import geopandas as gpd
    from shapely.geometry import box

    path = tmp_path / "no_biome.geojson"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[box(0, 0, 1, 1)], crs=4326).to_file(path, driver="GeoJSON")
    with pytest.raises(InputError, match="no biome column"):
        biome_of(0.5, 0.5, layer=path)


def test_overlapping_polygons_resolve_to_the_first_in_file_order(tmp_path):
    """Many nested squares around the points: the spatial index returns them in its own order, the layer's
    documented rule is file order."""
    import geopandas as gpd
    from shapely.geometry import box

    rng = np.random.default_rng(0)
    n = 120
    half = rng.uniform(1.0, 5.0, n)
    numbers = rng.integers(1, len(BIOMES) + 1, n)
    frame = gpd.GeoDataFrame({"BIOME_NUM": numbers}, geometry=[box(-h, -h, h, h) for h in half], crs=4326)
    path = tmp_path / "overlapping.gpkg"
    frame.to_file(path, driver="GPKG")
    lat, lon = rng.uniform(-0.9, 0.9, 200), rng.uniform(-0.9, 0.9, 200)  # inside every square
    got = biome_of(lat, lon, layer={"path": str(path), "column": "BIOME_NUM"})
    assert set(got.tolist()) == {BIOMES[numbers[0] - 1]}
