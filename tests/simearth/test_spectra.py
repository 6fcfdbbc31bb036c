import importlib.util
from pathlib import Path

import numpy as np
import pytest

from geodiv.bands import S2_BANDS
from geodiv.simearth import spectra
from geodiv.simearth.layout import M

ROOT = Path(__file__).resolve().parents[2]
B = {b: i for i, b in enumerate(S2_BANDS)}


def _ndvi(x):
    return (x[..., B["B8"]] - x[..., B["B4"]]) / (x[..., B["B8"]] + x[..., B["B4"]])


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gaussian_srf_weights_normalised_and_b10_unsampled():
    mod = _script("derive_spectra")
    wl = np.concatenate([np.arange(400, 1351, 10), np.arange(1460, 1791, 10), np.arange(1960, 2451, 10)]).astype(float)
    w = mod.gaussian_srf_weights(wl)
    assert w.shape == (13, len(wl))
    sampled = ~np.isnan(w[:, 0])
    assert not sampled[B["B10"]] and sampled.sum() == 12
    np.testing.assert_allclose(w[sampled].sum(1), 1.0, atol=1e-9)
    # A linear spectrum resamples to (about) its value at the band centre.
    spectrum = 0.1 + 1e-4 * wl
    got = w[sampled] @ spectrum
    centres = np.array([mod.S2_CENTER_NM[b] for b in S2_BANDS])[sampled]
    np.testing.assert_allclose(got, 0.1 + 1e-4 * centres, atol=2e-3)


def test_library_contents():
    lib = spectra.library()
    for arr in (lib.canopy, lib.soil, lib.sand, lib.npv, lib.roof, lib.pavement):
        assert arr.ndim == 2 and arr.shape[1] == 13 and len(arr) > 10
        assert np.all(arr[:, B["B10"]] < 0.005)
    assert np.all(np.diff(lib.canopy_lai) >= 0)
    dense = lib.canopy[lib.canopy_lai > 4]
    assert np.median(_ndvi(dense)) > 0.8
    assert len(lib.soil_lat) == len(lib.soil) and np.isfinite(lib.soil_lat).all()


def test_climate_vigour_orders_climates():
    v = {c: spectra.climate_vigour(c)[0] for c in ("Af", "Cfb", "Aw", "BSk", "BWh", "ET", "EF")}
    assert v["Af"] > v["Cfb"] > v["BSk"] > v["BWh"]
    assert v["Af"] > v["Aw"]
    assert v["EF"] == 0.0 and v["ET"] < v["Cfb"]
    assert spectra.climate_vigour(None) == (0.5, 0.5)


def test_soil_pool_is_near_the_location():
    lib = spectra.library()
    i = 100
    pool = spectra.soil_pool(float(lib.soil_lat[i]), float(lib.soil_lon[i]))
    assert i in pool or np.any((lib.soil_lat[pool] == lib.soil_lat[i]) & (lib.soil_lon[pool] == lib.soil_lon[i]))
    assert np.all(np.abs(lib.soil_lat[pool] - lib.soil_lat[i]) < 15)
    # Middle of the South Pacific: no soil within 1500 km -> the whole library.
    assert len(spectra.soil_pool(-40.0, -130.0)) == len(lib.soil)


def _ctx(vigour, wetness, seed=0):
    return spectra.SpectralContext(np.random.default_rng(seed), vigour, wetness, spectra.soil_pool(48.0, 2.0))


def test_material_spectra_are_physical():
    ctx = _ctx(0.9, 0.85)
    water = spectra.material_spectra(M["water"], 50, ctx)
    assert np.all(water[:, B["B8"]] < 0.05) and np.all(water[:, B["B12"]] < 0.01)
    snow = spectra.material_spectra(M["snow"], 50, ctx)
    assert np.all(snow[:, B["B3"]] > 0.6) and np.all(snow[:, B["B11"]] < 0.15)
    for mat in ("broadleaf_deciduous", "needleleaf_evergreen", "crop_green", "grass"):
        assert np.median(_ndvi(spectra.material_spectra(M[mat], 50, ctx))) > 0.5, mat
    # Needleleaf canopies are darker in the NIR than broadleaf ones (crown shadowing).
    needle = spectra.material_spectra(M["needleleaf_evergreen"], 200, ctx)[:, B["B8"]].mean()
    broad = spectra.material_spectra(M["broadleaf_deciduous"], 200, ctx)[:, B["B8"]].mean()
    assert needle < broad
    soil = spectra.material_spectra(M["bare_soil"], 50, ctx)
    assert np.median(_ndvi(soil)) < 0.3


def test_vigour_controls_greenness():
    wet = spectra.material_spectra(M["grass"], 300, _ctx(1.0, 1.0))
    dry = spectra.material_spectra(M["grass"], 300, _ctx(0.1, 0.1))
    assert _ndvi(wet).mean() > _ndvi(dry).mean() + 0.2


def test_object_spectra_deterministic():
    mats = np.array([M["water"], M["roof"], M["grass"], M["roof"]], np.uint8)
    a = spectra.object_spectra(mats, _ctx(0.5, 0.5, seed=3))
    b = spectra.object_spectra(mats, _ctx(0.5, 0.5, seed=3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 13) and a.dtype == np.float32


@pytest.mark.parametrize("tau", [0.0, 0.2])
def test_haze_is_blue_heavy(tau):
    h = spectra.haze_spectrum(tau)
    assert h[B["B10"]] == 0
    if tau:
        assert h[B["B2"]] > h[B["B8"]] > h[B["B12"]] > 0
