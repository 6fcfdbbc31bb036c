"""Landscape layout: from land-cover class fractions to a per-pixel class map and a map of objects.

Every process is a documented random process driven by one ``numpy.random.Generator``:

1. **Units.** The IGBP classes of the patch (with target shares) each take a region of the patch: one smooth
   Gaussian random field per class; classes take, in turn, the ``share * H * W`` unassigned pixels where their
   field is highest. The fields' correlation length sets how fragmented the units are.
2. **Fill.** Each unit is filled by its class's process (``_FILLERS``): field parcels for cropland (a rotated,
   jittered strip grid, each parcel one crop state), closed forest with gaps and stands, savanna tree clumps whose
   density drifts smoothly across the unit, shrubs with bare gaps, urban blocks with buildings, green lots and a
   street grid, wetland vegetation with pools, barren ground of soil/sand/rock patches, snow with outcrops.
3. **Lines.** A river (a sine-meandering band with bank trees) with a probability that grows with the water and
   wetland fractions and the climate's wetness; rural roads through cropland and mosaics.

The result is a label map (``SIM_CLASSES`` codes), a material map (what the spectra are drawn for; a fallow
parcel is labelled cropland but is bare soil) and an object map (each parcel, building, stand ... gets its own
spectrum).

The random fields and the array helpers the layout shares with the structures live in ``random_fields``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from geodiv.geo import IGBP_CLASSES
from geodiv.simearth.random_fields import _compact, _quantile_mask, smooth_field

#: Per-pixel classes of a simulated patch (``Patch.classes`` codes index this tuple).
SIM_CLASSES: tuple[str, ...] = (
    "water", "needleleaf_evergreen", "broadleaf_evergreen", "needleleaf_deciduous", "broadleaf_deciduous",
    "mixed_forest", "shrubland", "grassland", "wetland", "cropland", "built_up", "road", "barren", "snow_ice",
)
C = {name: i for i, name in enumerate(SIM_CLASSES)}
FOREST_CODES = (1, 2, 3, 4, 5)
BUILT_CODES = (10, 11)

#: Materials: what a pixel's spectrum is drawn for (see ``spectra.py``).
MATERIALS: tuple[str, ...] = (
    "water", "needleleaf_evergreen", "broadleaf_evergreen", "needleleaf_deciduous", "broadleaf_deciduous",
    "shrub", "grass", "wetland_vegetation", "crop_green", "crop_senescent", "bare_soil", "roof", "pavement",
    "sand", "rock", "snow", "solar_panel", "greenhouse", "salt", "char",
)
M = {name: i for i, name in enumerate(MATERIALS)}

#: The 17 IGBP class names (index = IGBP code), as in geodiv.geo.
IGBP_NAMES: tuple[str, ...] = tuple(IGBP_CLASSES)


@dataclass
class Layout:
    labels: np.ndarray  # uint8 (H, W) SIM_CLASSES codes
    materials: np.ndarray  # uint8 (H, W) MATERIALS codes
    objects: np.ndarray  # int32 (H, W), 0..n_objects-1
    object_material: np.ndarray  # uint8 (n_objects,)
    units: np.ndarray  # uint8 (H, W) IGBP code of the unit each pixel belongs to



def _rotated_coords(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    return u - u.min(), v - v.min()


class _Builder:
    """Accumulates labels, materials and objects as fillers write into unit masks."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.labels = np.zeros(shape, np.uint8)
        self.materials = np.zeros(shape, np.uint8)
        self.objects = np.zeros(shape, np.int64)
        self.object_material: list[np.ndarray] = []
        self.n_objects = 0

    def put(self, mask: np.ndarray, label: int | np.ndarray, material: int | np.ndarray,
            local_ids: np.ndarray | None = None) -> None:
        """Write ``mask`` pixels. ``local_ids`` (H, W) non-negative ints split them into objects (default: one)."""
        if not mask.any():
            return
        if local_ids is None and np.ndim(material) == 0 and np.ndim(label) == 0:
            # One object of one material: no need to enumerate (label, material) pairs.
            self.labels[mask] = label
            self.materials[mask] = material
            self.objects[mask] = self.n_objects
            self.object_material.append(np.array([material], np.uint8))
            self.n_objects += 1
            return
        lab = label if np.ndim(label) == 0 else label[mask]
        mat = material if np.ndim(material) == 0 else material[mask]
        self.labels[mask] = lab
        self.materials[mask] = mat
        ids = np.zeros(int(mask.sum()), np.int64) if local_ids is None else local_ids[mask].astype(np.int64)
        # Objects are (local id, material) pairs: a parcel is one object per material it holds.
        key = ids * len(MATERIALS) + (np.asarray(mat, np.int64) if np.ndim(mat) else int(mat))
        uniq, inv = _compact(key)
        self.objects[mask] = self.n_objects + inv
        self.object_material.append((uniq % len(MATERIALS)).astype(np.uint8))
        self.n_objects += len(uniq)

    def layout(self, units: np.ndarray) -> Layout:
        mats = np.concatenate(self.object_material) if self.object_material else np.zeros(0, np.uint8)
        return Layout(self.labels, self.materials, self.objects.astype(np.int32), mats, units)


@dataclass
class Context:
    rng: np.random.Generator
    shape: tuple[int, int]
    wetness: float  # 0 (hyper-arid) .. 1 (humid), from the climate zone
    tropical: bool
    cold: bool
    igbp_fractions: np.ndarray  # (17,) fractions of the surrounding window


# ---------------------------------------------------------------------------------------------- fillers
def _fill_forest(b: _Builder, mask: np.ndarray, ctx: Context, label: int, material: int) -> None:
    rng, shape = ctx.rng, ctx.shape
    gaps, stands = smooth_field(rng, shape, rng.uniform(1.5, 4.0), n=2)
    # Closed canopy 80-97 %; gaps are grass (or shrub in dry climates).
    canopy = _quantile_mask(gaps, rng.uniform(0.80, 0.97), mask) & mask
    stand_ids = np.digitize(stands * rng.uniform(0.6, 1.2), [-1.0, -0.3, 0.3, 1.0])
    if label == C["mixed_forest"]:
        # Mixed forest: needleleaf and broadleaf patches, both labelled mixed.
        kind = smooth_field(rng, shape, rng.uniform(2.0, 5.0))[0] > rng.normal(0, 0.5)
        needle = M["needleleaf_deciduous"] if ctx.cold and rng.random() < 0.2 else M["needleleaf_evergreen"]
        mat = np.where(kind, needle, M["broadleaf_deciduous"] if not ctx.tropical else M["broadleaf_evergreen"])
        b.put(canopy, label, mat.astype(np.uint8), stand_ids)
    else:
        b.put(canopy, label, material, stand_ids)
    gap = mask & ~canopy
    gap_mat = M["shrub"] if ctx.wetness < 0.4 else M["grass"]
    b.put(gap, C["shrubland"] if gap_mat == M["shrub"] else C["grassland"], gap_mat)


def _tree_type(ctx: Context) -> tuple[int, int]:
    """Label and material of scattered trees in savannas, mosaics and along rivers, by climate."""
    if ctx.tropical:
        return (C["broadleaf_evergreen"], M["broadleaf_evergreen"]) if ctx.wetness > 0.8 else (
            C["broadleaf_deciduous"], M["broadleaf_deciduous"])
    if ctx.cold:
        return C["needleleaf_evergreen"], M["needleleaf_evergreen"]
    return C["broadleaf_deciduous"], M["broadleaf_deciduous"]


def _fill_savanna(b: _Builder, mask: np.ndarray, ctx: Context, tree_share: float) -> None:
    rng, shape = ctx.rng, ctx.shape
    clumps = smooth_field(rng, shape, rng.uniform(0.8, 2.0))[0]
    drift = smooth_field(rng, shape, rng.uniform(15, 40))[0]
    # Gradual mixes: the local tree share drifts smoothly (logit-normal around the class's share).
    local = 1.0 / (1.0 + np.exp(-(np.log(tree_share / (1 - tree_share)) + 0.8 * drift)))
    trees = _quantile_mask(clumps, local) & mask
    tl, tm = _tree_type(ctx)
    b.put(trees, tl, tm, (clumps * 2).astype(np.int64).clip(0, 3))
    rest = mask & ~trees
    bare = _quantile_mask(drift * -1.0, 0.1 * (1 - ctx.wetness), rest) & rest
    b.put(rest & ~bare, C["grassland"], M["grass"])
    b.put(bare, C["barren"], M["bare_soil"])


def _fill_shrubland(b: _Builder, mask: np.ndarray, ctx: Context, shrub_share: float) -> None:
    f = smooth_field(ctx.rng, ctx.shape, ctx.rng.uniform(0.8, 2.5))[0]
    shrubs = _quantile_mask(f, shrub_share, mask) & mask
    b.put(shrubs, C["shrubland"], M["shrub"])
    rest = mask & ~shrubs
    grass = _quantile_mask(-f, 0.5 * ctx.wetness, rest) & rest
    b.put(grass, C["grassland"], M["grass"])
    b.put(rest & ~grass, C["barren"], M["sand"] if ctx.wetness < 0.15 else M["bare_soil"])


def _fill_grassland(b: _Builder, mask: np.ndarray, ctx: Context) -> None:
    f, g = smooth_field(ctx.rng, ctx.shape, ctx.rng.uniform(2.0, 6.0), n=2)
    bare = _quantile_mask(f, 0.02 + 0.2 * (1 - ctx.wetness), mask) & mask
    b.put(mask & ~bare, C["grassland"], M["grass"], (g > 0).astype(np.int64))
    b.put(bare, C["barren"], M["bare_soil"])


def _fill_wetland(b: _Builder, mask: np.ndarray, ctx: Context) -> None:
    f = smooth_field(ctx.rng, ctx.shape, ctx.rng.uniform(2.0, 5.0))[0]
    pools = _quantile_mask(f, ctx.rng.uniform(0.1, 0.3), mask) & mask
    b.put(pools, C["water"], M["water"])
    b.put(mask & ~pools, C["wetland"], M["wetland_vegetation"])


def _parcels(ctx: Context, size_px: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Parcel ids and a boundary mask from a rotated strip grid with random strip widths and field lengths."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _rotated_coords(rng, shape)
    # Gentle warping so boundaries are not ruler-straight.
    warp = smooth_field(rng, shape, 12.0, n=2) * rng.uniform(0.5, 2.0)
    u = u + warp[0]
    v = v + warp[1]
    n_max = int(2 * max(shape) / min(size_px)) + 4
    widths = rng.lognormal(np.log(size_px[0]), 0.35, n_max)
    edges = np.cumsum(widths) - rng.uniform(0, widths[0]) - 3.0
    strip = np.searchsorted(edges, u).clip(0, n_max - 1)
    lengths = rng.lognormal(np.log(size_px[1]), 0.45, n_max)
    offset = rng.uniform(0, lengths)
    along = (v + 3.0 + offset[strip]) / lengths[strip]
    field = np.floor(along).astype(np.int64)
    ids = strip * 4096 + field
    # One-pixel boundaries (tracks, hedges) on a share of the edges between parcels.
    edge = np.zeros(shape, bool)
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return ids, edge


def _fill_cropland(b: _Builder, mask: np.ndarray, ctx: Context, natural_share: float = 0.0) -> None:
    rng = ctx.rng
    ids, edge = _parcels(ctx, (rng.uniform(10, 35), rng.uniform(15, 50)))
    uniq, inv = _compact(ids.ravel())
    inv = inv.reshape(ids.shape)
    # Parcel state: green crop, senescent/harvested or bare soil; drier climates leave more fields bare.
    p_green = 0.25 + 0.45 * ctx.wetness
    p = np.array([p_green, (1 - p_green) * 0.5, (1 - p_green) * 0.5])
    state = rng.choice(3, size=len(uniq), p=p / p.sum())
    mat = np.array([M["crop_green"], M["crop_senescent"], M["bare_soil"]], np.uint8)[state][inv]
    lab = np.full(ids.shape, C["cropland"], np.uint8)
    if natural_share > 0:
        # Mosaic: some parcels are left to trees or grass.
        nat = rng.random(len(uniq)) < natural_share
        is_tree = rng.random(len(uniq)) < 0.6
        tl, tm = _tree_type(ctx)
        lab = np.where(nat[inv], np.where(is_tree[inv], tl, C["grassland"]), lab).astype(np.uint8)
        mat = np.where(nat[inv], np.where(is_tree[inv], tm, M["grass"]), mat).astype(np.uint8)
    hedge = edge & mask & (rng.random(ids.shape) < 0.9)
    keep_hedge = rng.random() < 0.5
    body = mask & ~hedge if keep_hedge else mask
    b.put(body, lab, mat, inv)
    if keep_hedge:
        b.put(hedge, C["grassland"], M["grass"])


def _fill_urban(b: _Builder, mask: np.ndarray, ctx: Context) -> None:
    rng, shape = ctx.rng, ctx.shape
    u, v = _rotated_coords(rng, shape)
    block_u, block_v = rng.uniform(6, 14), rng.uniform(6, 14)
    road_w = rng.choice([1.0, 1.0, 2.0])
    pu, pv = (u + rng.uniform(0, block_u)) % block_u, (v + rng.uniform(0, block_v)) % block_v
    road = mask & ((pu < road_w) | (pv < road_w))
    b.put(road, C["road"], M["pavement"])
    lots = mask & ~road
    # Buildings: each block split into 2 x 2 lots; a share of lots stay green (gardens, parks, trees).
    lot_id = (np.floor((u + 0.0) / (block_u / 2)) * 1000 + np.floor(v / (block_v / 2))).astype(np.int64)
    uniq, inv = _compact(lot_id.ravel())
    inv = inv.reshape(shape)
    green = rng.random(len(uniq)) < rng.uniform(0.1, 0.35)
    tree = rng.random(len(uniq)) < 0.5
    tl, tm = _tree_type(ctx)
    lab = np.where(green, np.where(tree, tl, C["grassland"]), C["built_up"]).astype(np.uint8)[inv]
    mat = np.where(green, np.where(tree, tm, M["grass"]), M["roof"]).astype(np.uint8)[inv]
    b.put(lots, lab, mat, inv)


def _fill_barren(b: _Builder, mask: np.ndarray, ctx: Context) -> None:
    f, g = smooth_field(ctx.rng, ctx.shape, ctx.rng.uniform(3.0, 10.0), n=2)
    sand_share = 0.7 if ctx.wetness < 0.15 else 0.2
    sand = _quantile_mask(f, sand_share, mask) & mask
    rock = _quantile_mask(g, 0.25, mask) & mask & ~sand
    b.put(sand, C["barren"], M["sand"])
    b.put(rock, C["barren"], M["rock"])
    b.put(mask & ~sand & ~rock, C["barren"], M["bare_soil"])


def _fill_snow(b: _Builder, mask: np.ndarray, ctx: Context) -> None:
    f = smooth_field(ctx.rng, ctx.shape, ctx.rng.uniform(2.0, 6.0))[0]
    rock = _quantile_mask(f, ctx.rng.uniform(0.0, 0.15), mask) & mask
    b.put(mask & ~rock, C["snow_ice"], M["snow"])
    b.put(rock, C["barren"], M["rock"])


def _fill_water(b: _Builder, mask: np.ndarray, ctx: Context) -> None:
    b.put(mask, C["water"], M["water"])


_FILLERS: dict[int, Callable[[_Builder, np.ndarray, Context], None]] = {
    0: _fill_water,
    1: lambda b, m, c: _fill_forest(b, m, c, C["needleleaf_evergreen"], M["needleleaf_evergreen"]),
    2: lambda b, m, c: _fill_forest(b, m, c, C["broadleaf_evergreen"], M["broadleaf_evergreen"]),
    3: lambda b, m, c: _fill_forest(b, m, c, C["needleleaf_deciduous"], M["needleleaf_deciduous"]),
    4: lambda b, m, c: _fill_forest(b, m, c, C["broadleaf_deciduous"], M["broadleaf_deciduous"]),
    5: lambda b, m, c: _fill_forest(b, m, c, C["mixed_forest"], M["needleleaf_evergreen"]),
    6: lambda b, m, c: _fill_shrubland(b, m, c, 0.75),
    7: lambda b, m, c: _fill_shrubland(b, m, c, 0.35),
    8: lambda b, m, c: _fill_savanna(b, m, c, 0.45),
    9: lambda b, m, c: _fill_savanna(b, m, c, 0.2),
    10: _fill_grassland,
    11: _fill_wetland,
    12: _fill_cropland,
    13: _fill_urban,
    14: lambda b, m, c: _fill_cropland(b, m, c, natural_share=0.4),
    15: _fill_snow,
    16: _fill_barren,
}


def patch_composition(fractions: np.ndarray, rng: np.random.Generator, concentration: float = 4.0,
                      min_share: float = 0.04) -> np.ndarray:
    """The IGBP shares of one patch, drawn around the shares of its surrounding window.

    A Dirichlet draw with mean ``fractions`` and total concentration ``concentration``: a pure window gives a pure
    patch; a mixed (fragmented) window gives patches of several classes in varying proportions. Shares under
    ``min_share`` are dropped (a 4 % sliver of a class is noise at this scale) and the rest renormalised.
    """
    f = np.asarray(fractions, np.float64).clip(0, None)
    if f.sum() <= 0:
        raise ValueError("fractions sum to zero")
    f = f / f.sum()
    present = f > 1e-6
    draw = np.zeros_like(f)
    draw[present] = rng.dirichlet(np.maximum(concentration * f[present], 1e-3))
    draw[draw < min_share] = 0.0
    if draw.sum() <= 0:
        draw[np.argmax(f)] = 1.0
    return draw / draw.sum()


def allocate_units(shares: np.ndarray, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """IGBP unit map (H, W) uint8: classes take, largest first, the top pixels of their own smooth field."""
    h, w = shape
    order = [int(k) for k in np.argsort(-shares) if shares[k] > 0]
    units = np.full(shape, order[0], np.uint8)
    if len(order) == 1:
        return units
    # Fewer, larger units when the patch is dominated by one class; more interleaving when it is mixed.
    scale = max(h, w) * rng.uniform(0.12, 0.3)
    fields = smooth_field(rng, shape, scale, n=len(order))
    free = np.ones(h * w, bool)
    for k, cls in enumerate(order[1:], start=1):
        n_px = int(round(shares[cls] * h * w))
        cand = np.flatnonzero(free)
        if n_px <= 0 or len(cand) == 0:
            continue
        vals = fields[k].ravel()[cand]
        take = cand[np.argpartition(-vals, min(n_px, len(cand)) - 1)[:n_px]]
        units.ravel()[take] = cls
        free[take] = False
    return units


def _add_river(b: _Builder, ctx: Context) -> None:
    rng, (h, w) = ctx.rng, ctx.shape
    u, v = _rotated_coords(rng, (h, w))
    vc = v.max() * rng.uniform(0.25, 0.75)
    wave = rng.uniform(20, 80)
    amp = rng.uniform(0.0, 0.25) * wave
    centre = vc + amp * np.sin(2 * np.pi * u / wave + rng.uniform(0, 2 * np.pi))
    centre = centre + 2.0 * smooth_field(rng, (h, w), 10.0)[0]
    width = rng.lognormal(np.log(2.5), 0.5)
    dist = np.abs(v - centre)
    river = dist < width / 2
    bank = (dist < width / 2 + rng.uniform(1.0, 3.0)) & ~river
    not_built = ~np.isin(b.labels, BUILT_CODES)
    if ctx.wetness > 0.3:
        tl, tm = _tree_type(ctx)
        b.put(bank & not_built & (rng.random((h, w)) < 0.8), tl, tm)
    b.put(river, C["water"], M["water"])


def _add_rural_road(b: _Builder, ctx: Context) -> None:
    rng, shape = ctx.rng, ctx.shape
    u, v = _rotated_coords(rng, shape)
    road = np.abs(v - v.max() * rng.uniform(0.1, 0.9)) < 0.5
    road &= ~(b.labels == C["water"])
    b.put(road, C["road"], M["pavement"])


def build_layout(shares: np.ndarray, ctx: Context,
                 extra: Callable[[_Builder], None] | None = None) -> Layout:
    """Units, fills, then rivers and roads (then ``extra``, e.g. a structure): the full layout of one patch."""
    units = allocate_units(shares, ctx.rng, ctx.shape)
    b = _Builder(ctx.shape)
    for cls in np.unique(units):
        _FILLERS[int(cls)](b, units == cls, ctx)
    f = ctx.igbp_fractions
    p_river = min(0.6, 0.03 + 1.5 * float(f[0] + f[11]) * (0.3 + ctx.wetness)) if shares[0] < 0.9 else 0.0
    if shares[15] < 0.5 and ctx.rng.random() < p_river:
        _add_river(b, ctx)
    p_road = 0.5 * float(shares[12] + shares[14] + shares[13])
    if ctx.rng.random() < p_road:
        _add_rural_road(b, ctx)
    if extra is not None:
        extra(b)
    return b.layout(units)
