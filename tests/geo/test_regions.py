"""Continents (hand-checked table of places), regions and their bad input."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.geo import CONTINENTS, continent_index, continent_of, resolve_region

# (place, lat, lon, continent by the rules in docs/geography.md); None = ocean. Coordinates are the places'
# published ones, a few kilometres inland where Natural Earth 1:110m's coast is coarse.
PLACES = [
    # Europe, including the edges of the Europe/Asia rules
    ("Paris", 48.85, 2.35, "Europe"),
    ("Berlin", 52.52, 13.40, "Europe"),
    ("Madrid", 40.42, -3.70, "Europe"),
    ("Moscow", 55.75, 37.62, "Europe"),
    ("Perm, west of the Urals", 58.01, 56.25, "Europe"),
    ("Kaliningrad", 54.71, 20.51, "Europe"),
    ("Crimea", 44.95, 34.10, "Europe"),
    ("Edirne, Turkish Thrace", 41.68, 26.56, "Europe"),
    ("Grozny, north of the Caucasus", 43.32, 45.69, "Europe"),
    ("West Kazakhstan, west of the Ural River", 47.5, 50.5, "Europe"),
    ("Novaya Zemlya", 72.0, 55.0, "Europe"),
    ("Longyearbyen, Svalbard", 78.22, 15.65, "Europe"),
    ("Reykjavik", 64.15, -21.94, "Europe"),
    ("Azores, Terceira", 38.7, -27.2, "Europe"),
    ("Azores, Flores", 39.45, -31.2, "Europe"),
    # Asia
    ("Yekaterinburg, east of the Urals", 56.84, 60.61, "Asia"),
    ("Aktobe, east of the Ural River", 50.28, 57.17, "Asia"),
    ("Novosibirsk", 55.03, 82.92, "Asia"),
    ("Yakutsk, Siberia", 62.03, 129.73, "Asia"),
    ("Chukotka, west of the antimeridian", 66.0, -175.0, "Asia"),
    ("Uskudar, Anatolian Istanbul", 41.02, 29.03, "Asia"),
    ("Ankara", 39.93, 32.86, "Asia"),
    ("Tbilisi", 41.72, 44.79, "Asia"),
    ("Baku", 40.41, 49.87, "Asia"),
    ("Saint Catherine, Sinai", 28.56, 33.95, "Asia"),
    ("Nicosia, Cyprus", 35.1, 33.4, "Asia"),
    ("Tokyo", 35.68, 139.69, "Asia"),
    ("Delhi", 28.61, 77.21, "Asia"),
    ("Singapore", 1.35, 103.82, "Asia"),
    ("Bali, west of Wallace's line", -8.4, 115.2, "Asia"),
    ("Sulawesi, Wallacea", -2.0, 120.4, "Asia"),
    ("Dili, Timor-Leste", -8.56, 125.57, "Asia"),
    ("Lhasa", 29.65, 91.10, "Asia"),
    # Africa
    ("Cairo", 30.04, 31.24, "Africa"),
    ("Luxor", 25.69, 32.64, "Africa"),
    ("Sahara, Niger", 23.0, 12.0, "Africa"),
    ("Nairobi", -1.29, 36.82, "Africa"),
    ("Kinshasa", -4.32, 15.31, "Africa"),
    ("Tenerife, Canary Islands", 28.27, -16.64, "Africa"),
    ("Gran Canaria, Canary Islands", 27.95, -15.60, "Africa"),
    ("Reunion", -21.13, 55.53, "Africa"),
    ("Mauritius", -20.3, 57.58, "Africa"),
    ("Madeira", 32.75, -16.95, "Africa"),
    ("Cape Verde, Santiago", 15.1, -23.6, "Africa"),
    ("Zanzibar", -6.1, 39.3, "Africa"),
    ("Antananarivo, Madagascar", -18.9, 47.5, "Africa"),
    ("Cape Town", -33.92, 18.42, "Africa"),
    # North America
    ("Panama, west of the canal", 8.5, -80.5, "North America"),
    ("Yaviza, Panamanian Darien", 8.16, -77.69, "North America"),
    ("Mexico City", 19.43, -99.13, "North America"),
    ("Havana", 23.11, -82.37, "North America"),
    ("Jamaica", 18.1, -77.3, "North America"),
    ("Trinidad", 10.45, -61.3, "North America"),
    ("Greenland ice sheet", 72.0, -40.0, "North America"),
    ("Fairbanks, Alaska", 64.84, -147.72, "North America"),
    ("Attu, Aleutians east of the antimeridian", 52.9, 173.1, "North America"),
    ("Adak, Aleutians", 51.88, -176.65, "North America"),
    ("Chicago", 41.88, -87.63, "North America"),
    # South America
    ("French Guiana interior", 3.9, -53.0, "South America"),
    ("Cayenne, French Guiana", 4.93, -52.33, "South America"),
    ("Turbo, Colombian Darien", 8.2, -77.2, "South America"),
    ("Manaus", -3.12, -60.02, "South America"),
    ("Bogota", 4.71, -74.07, "South America"),
    ("Buenos Aires", -34.6, -58.4, "South America"),
    ("Santiago de Chile", -33.45, -70.67, "South America"),
    ("Falkland Islands", -51.7, -59.0, "South America"),
    ("Galapagos, Isabela", -0.8, -91.1, "South America"),
    # Oceania
    ("Hilo, Hawaii", 19.7, -155.09, "Oceania"),
    ("Honolulu, Hawaii", 21.31, -157.86, "Oceania"),
    ("Sydney", -33.87, 151.21, "Oceania"),
    ("Alice Springs", -23.7, 133.88, "Oceania"),
    ("Auckland", -36.85, 174.76, "Oceania"),
    ("Tahiti", -17.65, -149.43, "Oceania"),
    ("Tongatapu, Tonga", -21.2, -175.2, "Oceania"),
    ("Port Moresby, Papua New Guinea", -9.44, 147.18, "Oceania"),
    ("Wamena, Indonesian New Guinea", -4.1, 138.95, "Oceania"),
    ("Vanua Levu, Fiji, west of the antimeridian", -16.5, 179.5, "Oceania"),
    ("Taveuni, Fiji, east of the antimeridian", -16.8, -179.97, "Oceania"),
    # Antarctica
    ("South Pole", -89.99, 0.0, "Antarctica"),
    ("South Pole, lat -90 lon 180", -90.0, 180.0, "Antarctica"),
    ("Vostok station", -78.46, 106.84, "Antarctica"),
    ("Kerguelen Islands", -49.35, 70.2, "Antarctica"),
    # Ocean
    ("Central Pacific", 0.0, -140.0, None),
    ("Equator at the antimeridian", 0.0, 180.0, None),
    ("North Atlantic", 30.0, -40.0, None),
    ("Indian Ocean", -30.0, 80.0, None),
    ("North Pole", 90.0, 0.0, None),
    ("Caspian Sea", 42.0, 51.0, None),
    ("Black Sea", 43.0, 34.0, None),
    ("Mediterranean Sea", 35.0, 18.0, None),
    ("Southern Ocean", -60.0, -120.0, None),
    ("Bering Sea", 58.0, -175.0, None),
    ("Tasman Sea", -40.0, 160.0, None),
    ("Gulf of Mexico", 25.0, -90.0, None),
]


def test_table_is_large_and_covers_every_continent():
    assert len(PLACES) >= 40
    assert {c for *_, c in PLACES} == set(CONTINENTS) | {None}


@pytest.mark.parametrize(("place", "lat", "lon", "expected"), PLACES, ids=[p[0] for p in PLACES])
def test_hand_checked_place(place, lat, lon, expected):
    assert continent_of(lat, lon).item() == expected, place


def test_vectorised_matches_pointwise_and_keeps_shape():
    lat = np.array([p[1] for p in PLACES])
    lon = np.array([p[2] for p in PLACES])
    names = continent_of(lat, lon)
    assert names.dtype == object and names.shape == lat.shape
    assert list(names) == [p[3] for p in PLACES]
    idx = continent_index(lat.reshape(-1, 1), lon.reshape(-1, 1))
    assert idx.shape == (len(PLACES), 1) and idx.dtype == np.int8
    assert list(idx.ravel()) == [CONTINENTS.index(p[3]) if p[3] else -1 for p in PLACES]


def test_antimeridian_is_one_meridian():
    lat = np.linspace(-89.9, 89.9, 400)
    np.testing.assert_array_equal(continent_index(lat, -180.0), continent_index(lat, 180.0))


@pytest.mark.parametrize(
    ("lat", "lon", "fragment"),
    [
        (91.0, 0.0, "lat"),
        (-90.5, 0.0, "lat"),
        (0.0, 180.5, "lon"),
        (np.nan, 0.0, "lat"),
        (0.0, np.inf, "lon"),
        ([0.0, 10.0, np.nan], [0.0, 0.0, 0.0], "lat[2]"),
        ("north", 0.0, "numbers"),
    ],
)
def test_bad_coordinates_raise_input_error(lat, lon, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[")):
        continent_of(lat, lon)


def test_swapped_lat_lon_hint():
    with pytest.raises(InputError, match="swapped"):
        continent_of(120.0, 45.0)


# ------------------------------------------------------------------------------------------- regions
@pytest.mark.parametrize(
    "spec", ["Europe", "europe", " EUROPE ", "North_America", "north-america", "South America"]
)
def test_continent_names_resolve(spec):
    region = resolve_region(spec)
    assert region.name in CONTINENTS and region.continents == (CONTINENTS.index(region.name),)


def test_lists_and_joined_names_resolve_to_the_same_region():
    a = resolve_region(["Europe", "Africa"])
    b = resolve_region("Africa, Europe")
    c = resolve_region("Europe+Africa")
    assert a.name == b.name == c.name == "Africa+Europe"
    assert a.continents == (0, 3)
    got = a.contains([48.85, 30.04, 35.68, 0.0], [2.35, 31.24, 139.69, -140.0])
    assert got.tolist() == [True, True, False, False]


def test_global_contains_everything_and_bbox_wraps_the_antimeridian():
    assert resolve_region("global").contains([0.0, 90.0], [-140.0, 0.0]).all()
    box = resolve_region("bbox:170,-30,-170,0")  # across the antimeridian
    inside = box.contains([-17.0, -17.0, -17.0, 5.0], [178.0, -175.0, 0.0, 178.0])
    assert inside.tolist() == [True, True, False, False]
    plain = resolve_region("bbox:-10,35,30,60")
    assert plain.contains([48.85, 30.04], [2.35, 31.24]).tolist() == [True, False]


def test_polygon_file_region(biome_layers):
    region = resolve_region(biome_layers["vector"])
    assert region.name == "polygon:biome_polygons.geojson"
    got = region.contains([50.0, 23.0, 35.0, 46.0], [10.0, 10.0, 10.0, 7.0])
    assert got.tolist() == [True, True, False, True]
    reprojected = resolve_region(str(biome_layers["vector_3857"]))
    assert reprojected.contains([50.0, 23.0, 35.0], [10.0, 10.0, 10.0]).tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("Atlantis", "valid regions: 'Africa'"),
        (["Europe", "Atlantis"], "unknown continent 'Atlantis'"),
        ([], "empty region list"),
        ("bbox:1,2,3", "four numbers"),
        ("bbox:0,50,10,40", "minlat < maxlat"),
        ("bbox:0,0,200,10", "-180 <= minlon"),
        ("nowhere/regions.gpkg", "not found"),
        (42, "must be a name"),
    ],
)
def test_bad_regions_raise_input_error(spec, fragment):
    with pytest.raises(InputError, match=fragment):
        resolve_region(spec)


def test_region_file_without_polygons(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    path = tmp_path / "points.geojson"
    gpd.GeoDataFrame({"a": [1]}, geometry=[Point(0, 0)], crs=4326).to_file(path, driver="GeoJSON")
    with pytest.raises(InputError, match="no polygons"):
        resolve_region(path)
