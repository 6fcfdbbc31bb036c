import numpy as np

from geodiv.simearth import layout as ls
from geodiv.simearth.layout import IGBP_NAMES, SIM_CLASSES, C, Context


def _ctx(seed=0, wetness=0.8, shape=(64, 64), fractions=None):
    f = np.zeros(17) if fractions is None else fractions
    return Context(np.random.default_rng(seed), shape, wetness, False, False, f)


def test_patch_composition_follows_the_window():
    rng = np.random.default_rng(1)
    pure = np.eye(17)[12]
    assert np.array_equal(ls.patch_composition(pure, rng), pure)
    mixed = np.zeros(17)
    mixed[[1, 10, 12]] = [0.5, 0.3, 0.2]
    draws = np.array([ls.patch_composition(mixed, rng) for _ in range(400)])
    np.testing.assert_allclose(draws.sum(1), 1.0)
    assert set(np.flatnonzero(draws.sum(0))) <= {1, 10, 12}
    np.testing.assert_allclose(draws.mean(0)[[1, 10, 12]], [0.5, 0.3, 0.2], atol=0.06)
    # Mixed windows give mixed patches (fragmentation follows the window).
    assert np.mean((draws > 0).sum(1)) > 1.5


def test_allocate_units_hits_the_shares():
    shares = np.zeros(17)
    shares[[0, 4, 12]] = [0.2, 0.3, 0.5]
    units = ls.allocate_units(shares, np.random.default_rng(2), (64, 64))
    got = np.bincount(units.ravel(), minlength=17) / units.size
    np.testing.assert_allclose(got[[0, 4, 12]], [0.2, 0.3, 0.5], atol=1 / 64)


def _layout(igbp: int, seed=0, wetness=0.8, size=64):
    shares = np.eye(17)[igbp]
    return ls.build_layout(shares, _ctx(seed, wetness, (size, size), shares))


def test_cropland_has_parcels_and_urban_has_roads():
    crop = _layout(IGBP_NAMES.index("Croplands"))
    assert (crop.labels == C["cropland"]).mean() > 0.6
    assert len(np.unique(crop.objects[crop.labels == C["cropland"]])) >= 4  # several parcels
    urban = _layout(IGBP_NAMES.index("Urban and Built-up Lands"))
    assert (urban.labels == C["road"]).mean() > 0.05
    assert (urban.labels == C["built_up"]).mean() > 0.3


def test_forest_and_savanna_tree_cover():
    forest = _layout(IGBP_NAMES.index("Evergreen Needleleaf Forests"))
    tree = np.isin(forest.labels, ls.FOREST_CODES).mean()
    savanna = _layout(IGBP_NAMES.index("Savannas"), wetness=0.6)
    tree_sav = np.isin(savanna.labels, ls.FOREST_CODES).mean()
    assert tree > 0.7 and 0.03 < tree_sav < 0.5
    assert (forest.labels == C["needleleaf_evergreen"]).mean() > 0.7


def test_layout_consistency():
    for igbp in range(17):
        lay = _layout(igbp, seed=igbp)
        assert lay.labels.dtype == np.uint8 and lay.labels.max() < len(SIM_CLASSES)
        assert lay.objects.min() >= 0 and lay.objects.max() < len(lay.object_material)
        # Every pixel's material is its object's material.
        np.testing.assert_array_equal(lay.object_material[lay.objects], lay.materials)


def test_rivers_appear_in_wet_landscapes():
    frac = np.zeros(17)
    frac[[0, 10, 11]] = [0.3, 0.4, 0.3]
    shares = np.zeros(17)
    shares[10] = 1.0
    with_water = sum((ls.build_layout(shares, _ctx(s, 1.0, (48, 48), frac)).labels == C["water"]).any()
                     for s in range(30))
    assert with_water >= 5
