import json

import numpy as np
import pytest

from geodiv.bands import S2_BANDS
from geodiv.errors import InputError
from geodiv.simearth import SIM_CLASSES, SimConfig, patch_rng, render_patch, simulate_patch, simulate_patches
from geodiv.simearth.tasks import task_target

B = {b: i for i, b in enumerate(S2_BANDS)}
CROP = {"Croplands": 0.7, "Deciduous Broadleaf Forests": 0.2, "Urban and Built-up Lands": 0.1}


def _mean(p, band):
    return p.image[B[band]].astype(float).mean()


def test_render_patch_shapes_and_meta():
    p = render_patch(CROP, "Cfb", 48.8, 2.3, patch_rng(0, 48.8, 2.3), size=32)
    assert p.image.shape == (13, 32, 32) and p.image.dtype == np.uint16
    assert p.classes.shape == (32, 32) and p.classes.dtype == np.uint8 and p.classes.max() < len(SIM_CLASSES)
    json.dumps(p.meta)
    for key in ("lat", "lon", "continent", "landcover", "landcover_fractions", "climate", "biome", "tree_cover",
                "built_up", "water_fraction", "forest_type_fractions"):
        assert key in p.meta
    assert p.meta["tree_cover"] == pytest.approx(task_target("treecover", p), abs=1e-4)
    assert p.meta["built_up"] == pytest.approx(task_target("builtup", p), abs=1e-4)
    assert _mean(p, "B10") < 50  # near zero, as in L2A


def test_deterministic_for_seed_and_location():
    a = render_patch(CROP, "Cfb", 48.8, 2.3, patch_rng(5, 48.8, 2.3), size=24)
    b = render_patch(CROP, "Cfb", 48.8, 2.3, patch_rng(5, 48.8, 2.3), size=24)
    c = render_patch(CROP, "Cfb", 48.8, 2.3, patch_rng(6, 48.8, 2.3), size=24)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.classes, b.classes)
    assert not np.array_equal(a.image, c.image)


def test_non_square_multiple_sizes_work():
    for size in (1, 7, 33):
        p = render_patch({"Grasslands": 1.0}, "BSk", 45.0, 100.0, patch_rng(0, 45, 100), size=size)
        assert p.image.shape == (13, size, size)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_sizes(size):
    with pytest.raises(InputError, match="size"):
        render_patch(CROP, "Cfb", 48.8, 2.3, patch_rng(0, 0, 0), size=size)


def test_bad_fractions_and_classes():
    with pytest.raises(InputError, match="unknown land-cover class"):
        render_patch({"Jungle": 1.0}, "Af", 0, 0, patch_rng(0, 0, 0))
    with pytest.raises(InputError):
        render_patch(np.zeros(17), "Af", 0, 0, patch_rng(0, 0, 0))
    with pytest.raises(InputError):
        render_patch(np.ones(5), "Af", 0, 0, patch_rng(0, 0, 0))
    with pytest.raises(InputError, match="seed"):
        patch_rng(-1, 0, 0)


def test_clouds_and_no_noise_options():
    cfg = SimConfig(cloud_probability=1.0, haze_probability=0.0, noise=False)
    p = render_patch({"Evergreen Broadleaf Forests": 1.0}, "Af", -3, -60, patch_rng(1, -3, -60), 48, cfg)
    assert p.meta["cloud_fraction"] > 0
    assert p.image[B["B2"]].max() > 3000  # clouds are bright over a dark forest


def test_simulate_patch_uses_real_geography():
    paris = simulate_patch(48.86, 2.35, seed=0, size=32)
    assert paris.meta["continent"] == "Europe" and paris.meta["climate"].startswith("C")
    # The land cover alone (no structure drawn over it: a river or a clearing would change the means).
    plain = SimConfig(structures=False)
    sahara = simulate_patch(23.0, 10.0, seed=0, size=32, config=plain)
    amazon = simulate_patch(-4.5, -66.0, seed=0, size=32, config=plain)  # central Amazonia, far from Manaus
    assert sahara.meta["landcover"] == "Barren" and sahara.meta["continent"] == "Africa"
    assert _mean(sahara, "B4") > 2 * _mean(amazon, "B4")
    nd = lambda p: (_mean(p, "B8") - _mean(p, "B4")) / (_mean(p, "B8") + _mean(p, "B4"))  # noqa: E731
    assert nd(amazon) > 0.6 > 0.2 > nd(sahara)
    assert amazon.meta["tree_cover"] > 0.5 and sahara.meta["tree_cover"] == 0


def test_ocean_and_antarctica_refused_unless_allowed():
    with pytest.raises(InputError, match="ocean"):
        simulate_patch(0.0, -30.0, seed=0, size=16)
    with pytest.raises(InputError, match="Antarctica"):
        simulate_patch(-80.0, 0.0, seed=0, size=16)
    with pytest.raises(InputError):
        simulate_patch(95.0, 0.0, seed=0, size=16)
    sea = simulate_patch(0.0, -30.0, seed=0, size=16, config=SimConfig(allow_ocean=True))
    assert sea.meta["water_fraction"] == 1.0
    ice = simulate_patch(-80.0, 0.0, seed=0, size=16, config=SimConfig(allow_antarctica=True))
    assert ice.meta["class_fractions"].get("snow_ice", 0) > 0.5


def test_batch_equals_single():
    lat, lon = np.array([48.86, 62.0]), np.array([2.35, 25.0])
    batch = list(simulate_patches(lat, lon, seed=3, size=16))
    for i, p in enumerate(batch):
        q = simulate_patch(lat[i], lon[i], seed=3, size=16)
        np.testing.assert_array_equal(p.image, q.image)
        assert p.meta == q.meta
