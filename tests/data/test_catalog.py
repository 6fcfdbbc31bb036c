import numpy as np
import pytest

from geodiv.data.catalog import (
    assert_disjoint,
    location_ids,
    make_catalog,
    nearest_km,
    read_catalog,
    write_catalog,
)
from geodiv.errors import DataError, InputError


def test_nearest_km_known_distances():
    # one degree of latitude is 111.19 km on the mean sphere; antipodes are half the circumference
    d = nearest_km([0.0], [0.0], [1.0, 0.0], [0.0, 180.0])
    assert d[0] == pytest.approx(111.195, abs=0.01)
    assert d[1] == pytest.approx(np.pi * 6371.0088, rel=1e-9)
    assert np.isinf(nearest_km([], [], [1.0], [1.0])).all()


def test_assert_disjoint():
    lat_a, lon_a = np.array([10.0, 20.0]), np.array([10.0, 20.0])
    assert_disjoint(lat_a, lon_a, np.array([10.02]), np.array([10.0]), min_km=1.0)  # 2.2 km away: fine
    with pytest.raises(DataError, match=r"1 location\(s\).*within 1.0 km.*0\.556 km"):
        assert_disjoint(lat_a, lon_a, np.array([10.005, 30.0]), np.array([10.0, 30.0]), min_km=1.0)


def test_catalog_roundtrip_with_annotations(tmp_path):
    cat = make_catalog([48.85, -1.3], [2.35, 36.8], ["a.tif", "b.tif"], date=["2020-01-01", None],
                       columns={"label": [3, 5]})
    assert list(cat["continent"]) == ["Europe", "Africa"]
    assert {"landcover", "landcover_code", "climate", "biome", "geometry"} <= set(cat.columns)
    write_catalog(cat, tmp_path / "c.parquet")
    back = read_catalog(tmp_path / "c.parquet")
    assert list(back["id"]) == list(cat["id"]) and list(back["label"]) == [3, 5]
    assert list(back["continent"]) == ["Europe", "Africa"] and back.crs.to_epsg() == 4326
    (tmp_path / "p.csv").write_text("latitude,longitude\n35.68,139.77\n")
    assert list(read_catalog(tmp_path / "p.csv")["continent"]) == ["Asia"]


def test_location_ids_are_stable_and_validated():
    assert location_ids(np.array([0.0]), np.array([0.0]))[0] == "p090000000_180000000"
    with pytest.raises(InputError, match="invalid location"):
        make_catalog([95.0], [0.0], "x", annotate=False)
