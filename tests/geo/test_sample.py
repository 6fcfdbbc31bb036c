"""Sampling land locations uniformly by area."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geodiv.errors import InputError
from geodiv.geo import CONTINENTS, continent_of, landcover_of, resolve_region, sample_locations
from geodiv.geo.regions import _polygons


@pytest.mark.parametrize("continent", CONTINENTS)
def test_per_continent_purity(continent):
    lat, lon = sample_locations(continent, 1500, seed=1, exclude_ice=continent != "Antarctica")
    assert lat.shape == lon.shape == (1500,)
    assert (continent_of(lat, lon) == continent).all()
    codes = landcover_of(lat, lon)
    assert (codes != 0).all()
    if continent != "Antarctica":
        assert (codes != 15).all()


def test_counts_per_latitude_band_follow_land_area():
    """Compare with the area of the continent polygons per 15-degree band, computed independently in an
    equal-area (lon, sin lat) plane. The land layer adds small MODIS islands, hence a 1-point allowance."""
    n = 30000
    lat, _ = sample_locations("global", n, seed=7, exclude_ice=False, exclude_water=False)
    polygons, _, _ = _polygons()
    flat = shapely.transform(polygons, lambda xy: np.column_stack([xy[:, 0], np.sin(np.radians(xy[:, 1]))]))
    edges = np.arange(-90, 91, 15)
    area = np.array(
        [
            shapely.area(
                shapely.intersection(
                    flat, shapely.box(-180, np.sin(np.radians(a)), 180, np.sin(np.radians(b)))
                )
            ).sum()
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    expected = area / area.sum()
    observed = np.histogram(lat, bins=edges)[0] / n
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n) + 0.01
    assert (np.abs(observed - expected) <= tolerance).all(), (observed.round(3), expected.round(3))


def test_uniform_within_cells_in_longitude():
    lat, lon = sample_locations("bbox:-60,-10,-50,0", 4000, seed=3)  # Amazon: all land, no ice
    assert ((lon >= -60) & (lon <= -50) & (lat >= -10) & (lat <= 0)).all()
    counts = np.histogram(lon, bins=10, range=(-60, -50))[0]
    assert counts.min() > 0.75 * counts.mean()


def test_deterministic_per_seed():
    a = sample_locations("Europe", 500, seed=11)
    b = sample_locations("Europe", 500, seed=11)
    c = sample_locations("Europe", 500, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    g = sample_locations("Europe", 500, seed=np.random.default_rng(11))
    np.testing.assert_array_equal(a[0], g[0])


def test_exclusions_can_be_turned_off():
    lat, lon = sample_locations("Antarctica", 500, seed=0, exclude_ice=False)
    assert (landcover_of(lat, lon) == 15).mean() > 0.9
    lat, lon = sample_locations(["Europe", "Asia"], 3000, seed=0, exclude_water=False)
    assert np.isin(continent_of(lat, lon), ["Europe", "Asia"]).all()
    assert (landcover_of(lat, lon) == 0).any()  # lakes and coastal slivers


def test_bbox_across_the_antimeridian_and_polygon_regions(biome_layers):
    lat, lon = sample_locations("bbox:177,-20,-178,-15", 300, seed=0)  # Fiji
    assert (continent_of(lat, lon) == "Oceania").all()
    assert (lon > 0).any() and (lon < 0).any()
    region = resolve_region(biome_layers["vector"])
    lat, lon = sample_locations(region, 300, seed=0)
    assert region.contains(lat, lon).all() and (continent_of(lat, lon) != None).all()  # noqa: E711


def test_bad_sampling_requests():
    with pytest.raises(InputError, match="no land"):
        sample_locations("bbox:-120,-50,-100,-40", 10, seed=0)  # open South Pacific
    with pytest.raises(InputError, match="valid regions"):
        sample_locations("Atlantis", 10, seed=0)
    with pytest.raises(InputError, match="non-negative integer"):
        sample_locations("Europe", -1, seed=0)
    lat, lon = sample_locations("Europe", 0, seed=0)
    assert lat.shape == lon.shape == (0,)
