import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.simearth import SimConfig, patch_rng, render_patch, simulate_patch
from geodiv.simearth.layout import MATERIALS, C, Context, M, _Builder
from geodiv.simearth.structures import (
    ARRANGEMENT_GROUPS,
    GENERATORS,
    SETTLEMENTS,
    STRUCTURES,
    Site,
    draw_structure,
    paint,
    prevalence,
    structure_probability,
)
from geodiv.simearth.structures.shares import take_by_area
from geodiv.simearth.tasks import task_target
from geodiv.simearth.world import count_buildings

SIZE = 96
CENTRE = ((SIZE - 1) / 2, (SIZE - 1) / 2)
UNSET = 255
EUROPE = Site(climate="Cfb", continent="Europe", coastal=True)


def _paint(name, seed=0, site=EUROPE, wetness=0.8, tropical=False, cold=False):
    """The structure alone, on a blank builder (unpainted pixels keep label UNSET)."""
    rng = np.random.default_rng(seed)
    b = _Builder((SIZE, SIZE))
    b.labels[:] = UNSET
    b.materials[:] = UNSET
    ctx = Context(rng=rng, shape=(SIZE, SIZE), wetness=wetness, tropical=tropical, cold=cold,
                  igbp_fractions=np.eye(17)[12])
    paint(name, b, ctx, site, CENTRE)
    return b


def _mat(b, *names):
    return np.isin(b.materials, [M[n] for n in names])


def _n_objects(b, mask):
    return len(np.unique(b.objects[mask]))


def _share_of(b, mask):
    """Share of the painted pixels in ``mask``."""
    return mask.sum() / (b.labels != UNSET).sum()


def _share(b, *names):
    return _share_of(b, _mat(b, *names))


def _touches_two_borders(mask):
    edges = [mask[0].any(), mask[-1].any(), mask[:, 0].any(), mask[:, -1].any()]
    return sum(edges) >= 2


CROP = ("crop_green", "crop_senescent", "bare_soil", "grass")
TREES = ("broadleaf_deciduous", "broadleaf_evergreen", "needleleaf_evergreen")
#: structure -> (materials it may paint, a geometry check on the painted builder)
EXPECTED = {
    "centre_pivot": (CROP, lambda b: (
        (b.labels[CENTRE_DISK(16)] != UNSET).all() and _n_objects(b, CENTRE_DISK(16)) <= 4)),
    "field_mosaic_large": (CROP, lambda b: _n_objects(b, _mat(b, *CROP[:3])) <= 40),
    "field_mosaic_small": (CROP, lambda b: _n_objects(b, _mat(b, *CROP[:3])) >= 60),
    "terraces": (CROP, lambda b: _n_objects(b, _mat(b, *CROP[:3])) >= 60),
    "orchard": (TREES + ("grass", "bare_soil"), lambda b: 0.28 < _share(b, *TREES) < 0.72),
    "plantation": (TREES + ("grass", "bare_soil"), lambda b: (
        0.28 < _share(b, *TREES) < 0.8 and 0.02 < _share_of(b, b.labels == C["road"]) < 0.15)),
    "greenhouses": (CROP + ("greenhouse",), lambda b: _mat(b, "greenhouse").sum() > 0.3 * (b.labels != UNSET).sum()),
    "airport": (("pavement", "grass", "roof"), lambda b: (
        b.labels[CENTRE_PX] == C["road"] and _mat(b, "pavement").sum() >= 4 * SIZE and _mat(b, "grass").any())),
    "highway": (("pavement", "grass"), lambda b: (
        0.06 < _mat(b, "pavement").mean() < 0.14 and _touches_two_borders(_mat(b, "pavement")))),
    "road_interchange": (("pavement", "grass"), lambda b: (
        _mat(b, "pavement").mean() > 0.04 and _touches_two_borders(_mat(b, "pavement")))),
    "port": (("water", "pavement", "roof"), lambda b: (
        _mat(b, "water").mean() > 0.15 and _mat(b, "roof").any() and _mat(b, "pavement").any())),
    "open_pit_mine": (("rock", "bare_soil", "water"), lambda b: (
        _n_objects(b, _mat(b, "rock", "bare_soil")) >= 6 and b.labels[CENTRE_PX] in (C["barren"], C["water"], C["road"]))),
    "solar_farm": (("solar_panel", "bare_soil"), lambda b: _mat(b, "solar_panel").mean() > 0.08),
    "dense_urban_grid": (("roof", "pavement", "bare_soil", "grass") + TREES, lambda b: (
        0.08 < _share(b, "roof") < 0.4 and _share_of(b, b.labels == C["road"]) > 0.06
        and _mat(b, "roof").sum() > 9 * _n_objects(b, _mat(b, "roof")))),  # large buildings
    "informal_settlement": (("roof", "pavement", "bare_soil", "grass") + TREES, lambda b: (
        0.08 < _share(b, "roof") < 0.4 and _mat(b, "roof").sum() <= 4 * _n_objects(b, _mat(b, "roof")))),
    "suburban": (("roof", "pavement", "bare_soil", "grass") + TREES, lambda b: (
        0.08 < _share(b, "roof") < 0.4 and _share(b, "grass", *TREES) > 0.2)),
    "village": (("roof", "pavement", "bare_soil", "grass") + TREES, lambda b: (
        b.labels[CENTRE_PX] == C["built_up"] and _mat(b, "roof").mean() < 0.1)),
    "reservoir_dam": (("water", "pavement", "bare_soil"), lambda b: (
        _mat(b, "water").mean() > 0.1 and _mat(b, "pavement").any())),
    "meandering_river": (("water", "sand", "rock", "shrub", "grass") + TREES, lambda b: (
        0.03 < _mat(b, "water").mean() < 0.15 and _touches_two_borders(_mat(b, "water")))),
    "braided_river": (("water", "sand", "rock", "grass", "shrub") + TREES, lambda b: (
        _mat(b, "sand", "rock").mean() > 0.02 and _mat(b, "water").any())),
    "aquaculture_ponds": (("water", "bare_soil"), lambda b: (
        _mat(b, "water").mean() > 0.2 and _n_objects(b, _mat(b, "water")) >= 8)),
    "salt_pans": (("water", "salt", "bare_soil"), lambda b: _mat(b, "salt").mean() > 0.1),
    "clear_cuts": (TREES + ("bare_soil", "grass", "shrub", "char"), lambda b: (
        _mat(b, *TREES).mean() > 0.2 and b.labels[CENTRE_PX] in (C["barren"], C["grassland"], C["shrubland"]))),
    "shifting_cultivation": (TREES + ("bare_soil", "grass", "shrub", "char"), lambda b: (
        _mat(b, *TREES).mean() > 0.2 and b.labels[CENTRE_PX] in (C["barren"], C["grassland"], C["shrubland"])
        and _n_objects(b, ~_mat(b, *TREES) & (b.labels != UNSET)) >= 5)),
}
CENTRE_PX = (SIZE // 2, SIZE // 2)


def CENTRE_DISK(r):  # noqa: N802 - a mask constant by radius
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return np.hypot(yy - CENTRE[0], xx - CENTRE[1]) < r


def test_at_least_twenty_structures_each_with_a_generator_and_a_check():
    assert len(STRUCTURES) >= 20 and set(GENERATORS) == set(STRUCTURES) == set(EXPECTED)
    assert all(GENERATORS[n].__doc__ and "px" in GENERATORS[n].__doc__ for n in STRUCTURES)  # documented geometry


@pytest.mark.parametrize("name", STRUCTURES)
@pytest.mark.parametrize("seed", [0, 1])
def test_generator_geometry_and_materials(name, seed):
    allowed, check = EXPECTED[name]
    b = _paint(name, seed)
    painted = b.labels != UNSET
    assert painted.mean() > 0.05
    used = {int(m) for m in np.unique(b.materials[painted])}
    assert used <= {M[n] for n in allowed}, (name, used)
    assert check(b), name


@pytest.mark.parametrize("name", STRUCTURES)
def test_structure_patches_are_deterministic_per_seed(name):
    frac = {"Croplands": 0.5, "Grasslands": 0.3, "Deciduous Broadleaf Forests": 0.2}

    def render(seed):
        return render_patch(frac, "Cfb", 45.0, 5.0, patch_rng(seed, 45.0, 5.0), size=48, structure=name,
                            continent="Europe")

    a, b, c = render(3), render(3), render(4)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.meta == b.meta and a.meta["structure"] == name
    assert not np.array_equal(a.image, c.image)


def test_arrangement_groups_share_materials():
    """Classes of a group paint the same materials (over a few scenes), so spectra alone cannot tell them apart."""
    for group, names in ARRANGEMENT_GROUPS.items():
        assert len(names) >= 2
        if group in ("rectangular ponds", "pavement on grass"):
            continue  # salt crust / terminal roofs are extra materials there; geometry is the main difference
        sets = []
        for name in names:
            used = set()
            for seed in range(4):
                b = _paint(name, seed)
                used |= {int(m) for m in np.unique(b.materials[b.labels != UNSET])}
            sets.append(used)
        common = set.intersection(*sets)
        for used in sets:
            assert len(common) >= 0.5 * len(used), (group, sets)


def _prev(fr, climate, continent, coastal=False):
    f = np.zeros(17)
    for k, v in fr.items():
        f[k] = v
    return dict(zip(STRUCTURES, prevalence(f, climate, continent, coastal)[0]))


def test_prevalence_follows_location():
    crop = {12: 1.0}
    arid, temperate = _prev(crop, "BSk", "North America"), _prev(crop, "Cfb", "Europe")
    assert arid["centre_pivot"] > 5 * temperate["centre_pivot"]  # irrigation in dry climates
    assert temperate["field_mosaic_large"] > _prev(crop, "Cfb", "Africa")["field_mosaic_large"]  # field size
    assert _prev(crop, "Cwa", "Asia")["terraces"] > 5 * _prev(crop, "Cfb", "North America")["terraces"]
    assert _prev(crop, "Csa", "Europe")["orchard"] > 2 * temperate["orchard"]  # Mediterranean tree crops
    assert _prev(crop, "Af", "Asia")["plantation"] > 0 == temperate["plantation"]
    town = {13: 1.0}
    assert _prev(town, "Aw", "Africa")["informal_settlement"] > 10 * _prev(town, "Cfb", "Europe")["informal_settlement"]
    assert _prev(town, "Cfa", "North America")["dense_urban_grid"] > _prev(town, "Cfa", "Asia")["dense_urban_grid"]
    coast = _prev({12: 0.5, 0: 0.3, 11: 0.2}, "Am", "Asia", coastal=True)
    inland = _prev({12: 0.5, 0: 0.3, 11: 0.2}, "Am", "Asia", coastal=False)
    assert coast["aquaculture_ponds"] > 0 == inland["aquaculture_ponds"] == inland["port"]
    assert _prev({16: 1.0}, "BWh", "Oceania", True)["salt_pans"] > 5 * _prev({16: 1.0}, "Cfb", "Oceania", True)["salt_pans"]
    forest = {1: 1.0}
    assert _prev(forest, "Dfc", "Europe")["clear_cuts"] > _prev(forest, "Af", "Africa")["clear_cuts"]
    assert _prev({2: 1.0}, "Af", "Africa")["shifting_cultivation"] > 5 * _prev(forest, "Dfc", "Europe")[
        "shifting_cultivation"]
    assert _prev({15: 1.0}, "EF", "Antarctica") == dict.fromkeys(STRUCTURES, 0.0)  # none on ice
    assert _prev({0: 1.0}, "Cfb", None) == dict.fromkeys(STRUCTURES, 0.0)  # none at sea


def test_structure_draw_follows_prevalence():
    w = np.zeros(len(STRUCTURES))
    w[STRUCTURES.index("village")] = 0.5
    w[STRUCTURES.index("highway")] = 1.5
    rng = np.random.default_rng(0)
    draws = [draw_structure(rng, w) for _ in range(4000)]
    present = [d for d in draws if d is not None]
    assert len(present) / len(draws) == pytest.approx(float(structure_probability(w)), abs=0.03)
    assert np.mean([STRUCTURES[d] == "highway" for d in present]) == pytest.approx(0.75, abs=0.03)
    assert draw_structure(rng, np.zeros(len(STRUCTURES))) is None


def test_world_patches_carry_structures_where_prevalent():
    """Cropland in the US Corn Belt: most scenes hold a structure; open Sahara: most none."""
    corn = [simulate_patch(42.0 + 0.01 * i, -93.5, seed=i, size=32).meta["structure"] for i in range(20)]
    assert sum(p is not None for p in corn) >= 10
    sahara = [simulate_patch(23.0, 10.0 + 0.01 * i, seed=i, size=32).meta["structure"] for i in range(20)]
    assert sum(p is not None for p in sahara) <= 5
    off = simulate_patch(42.0, -93.5, seed=0, size=32, config=SimConfig(structures=False))
    assert off.meta["structure"] is None


def test_scene_and_settlement_labels():
    p = render_patch({"Urban and Built-up Lands": 1.0}, "Aw", -1.3, 36.8, patch_rng(0, -1.3, 36.8), size=64,
                     structure="informal_settlement", continent="Africa")
    assert STRUCTURES[task_target("scene", p)] == "informal_settlement"
    density = task_target("settlement", p)
    assert density == p.meta["buildings_per_km2"] > 0
    assert p.meta["buildings"] * 1e4 / 64**2 == pytest.approx(density, abs=0.01)
    with pytest.raises(InputError, match="needs a simulated Patch"):
        task_target("scene", p.classes)
    pivot = render_patch({"Croplands": 1.0}, "BSk", 40.0, -99.0, patch_rng(0, 40.0, -99.0), size=32,
                         structure="centre_pivot")
    assert task_target("scene", pivot) == STRUCTURES.index("centre_pivot")
    with pytest.raises(InputError, match="centred on one of"):
        task_target("settlement", pivot)
    with pytest.raises(InputError, match="unknown structure"):
        render_patch({"Croplands": 1.0}, "BSk", 40.0, -99.0, patch_rng(0, 40.0, -99.0), size=32, structure="mall")


def test_count_buildings_counts_roof_objects():
    b = _Builder((8, 8))
    ids = np.zeros((8, 8), np.int64)
    ids[:, 4:] = 1
    b.put(np.ones((8, 8), bool), C["built_up"], M["roof"], ids)
    b.put(np.eye(8, dtype=bool), C["road"], M["pavement"])
    assert count_buildings(b.layout(np.zeros((8, 8), np.uint8))) == 2


def test_built_up_fraction_predicts_settlement_density_poorly():
    """Across settlement morphologies, buildings per km^2 is not a linear function of the built-up fraction."""
    built, density = [], []
    for i in range(24):
        name = SETTLEMENTS[i % len(SETTLEMENTS)]
        p = render_patch({"Urban and Built-up Lands": 0.6, "Croplands": 0.4}, "Cfa", 30.0, 110.0,
                         patch_rng(i, 30.0, 110.0), size=48, structure=name, continent="Asia")
        built.append(p.meta["built_up"])
        density.append(p.meta["buildings_per_km2"])
    r = np.corrcoef(built, density)[0, 1]
    assert r**2 < 0.6


@pytest.mark.parametrize("size", [8, 33, 160])
def test_every_structure_renders_at_small_odd_and_large_sizes(size):
    for name in STRUCTURES:
        p = render_patch({"Croplands": 1.0}, "Cfb", 45.0, 5.0, patch_rng(1, 45.0, 5.0), size=size, structure=name,
                         continent="Europe")
        assert p.image.shape == (13, size, size) and p.meta["structure"] == name


# ------------------------------------------------------------------ area shares inside the arrangement groups
#: Materials that define one class inside its group (salt crust in salt pans, terminal roofs at airports): counted
#: with the material whose share they take (pond surface, pavement), as docs/simearth.md says.
OWN_MATERIALS = {"salt": "water", "roof_at_airport": "pavement"}
TREES_M = {M[n] for n in ("needleleaf_evergreen", "broadleaf_evergreen", "needleleaf_deciduous", "broadleaf_deciduous")}
SEEDS = range(40)
#: Largest allowed gap between a class's mean share of a material (over SEEDS) and the group's mean. The shares'
#: spread over scenes (footprint 0.2-1 of the patch) gives a standard error of about 0.02 on a 40-scene mean.
TOL = 0.05


def _shares(name: str, seed: int) -> dict[str, float]:
    """Share of the patch of each material the structure paints (trees merged; "none": the landscape's)."""
    m = _paint(name, seed).materials
    out: dict[str, float] = {}
    for k in np.unique(m):
        key = "none" if k == UNSET else "trees" if k in TREES_M else MATERIALS[k]
        if key == "salt":
            key = OWN_MATERIALS["salt"]
        if key == "roof" and name == "airport":
            key = OWN_MATERIALS["roof_at_airport"]
        out[key] = out.get(key, 0.0) + float((m == k).mean())
    return out


def _class_means(names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    per = {n: [_shares(n, s) for s in SEEDS] for n in names}
    keys = {k for runs in per.values() for d in runs for k in d}
    return {n: {k: float(np.mean([d.get(k, 0.0) for d in per[n]])) for k in keys} for n in names}


@pytest.mark.parametrize("group", list(ARRANGEMENT_GROUPS))
def test_material_area_shares_match_inside_each_arrangement_group(group):
    """Per-band statistics cannot tell a group's classes apart by how much of each material they show: every class's
    mean share of every material (40 scenes) is within TOL of the group's mean."""
    means = _class_means(ARRANGEMENT_GROUPS[group])
    for key in next(iter(means.values())):
        group_mean = np.mean([m[key] for m in means.values()])
        for name, m in means.items():
            assert abs(m[key] - group_mean) <= TOL, (group, name, key, round(m[key], 3), round(group_mean, 3))


def test_take_by_area_hits_the_shares_by_area():
    rng = np.random.default_rng(0)
    areas = rng.integers(1, 20, 400)
    state = take_by_area(rng, areas, (0.2, 0.5, 0.3))
    got = np.bincount(state, weights=areas, minlength=3) / areas.sum()
    np.testing.assert_allclose(got, [0.2, 0.5, 0.3], atol=20 / areas.sum())
    assert take_by_area(rng, areas, (1.0, 0.0)).max() == 0
    np.testing.assert_array_equal(take_by_area(np.random.default_rng(1), areas, (0.4, 0.6)),
                                  take_by_area(np.random.default_rng(1), areas, (0.4, 0.6)))  # one draw per seed
