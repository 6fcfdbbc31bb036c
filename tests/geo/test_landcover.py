"""IGBP land cover at a point and class fractions in a window."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.geo import IGBP_CLASSES, landcover_fractions, landcover_name, landcover_of
from geodiv.geo.landcover import _igbp


def test_classes_are_the_17_igbp_codes():
    assert len(IGBP_CLASSES) == 17
    assert IGBP_CLASSES[0] == "Water Bodies" and IGBP_CLASSES[15] == "Permanent Snow and Ice"
    assert IGBP_CLASSES[16] == "Barren" and IGBP_CLASSES[12] == "Croplands"


@pytest.mark.parametrize(
    ("place", "lat", "lon", "code"),
    [
        ("central Pacific", 0.0, -140.0, 0),
        ("Greenland ice sheet", 72.0, -40.0, 15),
        ("Vostok, Antarctica", -78.46, 106.84, 15),
        ("South Pole (MODIS data gap filled as ice)", -89.99, 0.0, 15),
        ("Sahara, Niger", 23.0, 12.0, 16),
        ("Paris", 48.85, 2.35, 13),
        ("French Guiana rainforest", 3.9, -53.0, 2),
    ],
)
def test_hand_checked_landcover(place, lat, lon, code):
    assert landcover_of(lat, lon).item() == code, place
    assert landcover_name(code).item() == IGBP_CLASSES[code]


def test_landcover_dtype_and_shape():
    got = landcover_of(np.zeros((2, 3)), np.zeros((2, 3)))
    assert got.dtype == np.uint8 and got.shape == (2, 3)


def _reference_fractions(lat: float, lon: float, window: int) -> np.ndarray:
    """Straightforward per-cell loop with the documented pole and antimeridian rules."""
    grid = np.asarray(_igbp())
    h, w = grid.shape
    row = min(int((90 - lat) * 20), h - 1)
    col = int((lon + 180) * 20) % w
    counts = np.zeros(17)
    half = window // 2
    for dr in range(-half, half + 1):
        r, c = row + dr, col
        if r < 0:
            r, c = -r - 1, col + w // 2
        elif r >= h:
            r, c = 2 * h - 1 - r, col + w // 2
        for dc in range(-half, half + 1):
            counts[grid[r, (c + dc) % w]] += 1
    return counts / window**2


@pytest.mark.parametrize("window", [1, 3, 7, 9, 17])
def test_fractions_match_a_cell_by_cell_count(window):
    rng = np.random.default_rng(window)
    lat = np.concatenate([[90.0, -90.0, 89.99, -89.97, 0.0, 45.0], rng.uniform(-90, 90, 60)])
    lon = np.concatenate([[180.0, -180.0, 0.01, 179.99, 180.0, -179.99], rng.uniform(-180, 180, 60)])
    got = landcover_fractions(lat, lon, window=window)
    assert got.shape == (66, 17) and got.dtype == np.float32
    want = np.stack([_reference_fractions(a, b, window) for a, b in zip(lat, lon, strict=True)])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_fractions_sum_to_one_and_point_class_is_present():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 80, 500), rng.uniform(-180, 180, 500)
    frac = landcover_fractions(lat, lon)
    np.testing.assert_allclose(frac.sum(axis=1), 1.0, atol=1e-5)
    assert (frac[np.arange(500), landcover_of(lat, lon)] >= 1 / 49 - 1e-6).all()
    assert (landcover_fractions(lat, lon, window=1).argmax(axis=1) == landcover_of(lat, lon)).all()


def test_fractions_same_on_both_sides_of_the_antimeridian():
    lat = np.linspace(-80, 80, 50)
    np.testing.assert_array_equal(landcover_fractions(lat, -180.0), landcover_fractions(lat, 180.0))


def test_fractions_keep_input_shape():
    assert landcover_fractions(48.85, 2.35).shape == (17,)
    assert landcover_fractions(np.zeros((2, 2)), np.zeros((2, 2)), window=3).shape == (2, 2, 17)


@pytest.mark.parametrize("window", [0, 2, -3, 7.0, True, 2001])
def test_bad_window(window):
    with pytest.raises(InputError, match="window"):
        landcover_fractions(0.0, 0.0, window=window)
