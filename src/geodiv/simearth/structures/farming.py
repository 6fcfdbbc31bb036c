"""Farming structures: centre pivots, field mosaics, terraces, orchards, plantations and greenhouses."""

from __future__ import annotations

import numpy as np

from geodiv.simearth.layout import C, Context, M, _Builder, _parcels, _tree_type
from geodiv.simearth.random_fields import _compact, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _extent, _frame, _grid, _rect_grid, _trees


def _season_green(rng: np.random.Generator, ctx: Context) -> float:
    """Share of green crop parcels in this scene: a season draw (0 = dormant/harvest .. 1 = peak growth) limited
    by the climate's wetness. The same for every crop structure, so it never tells them apart."""
    return float((0.1 + 0.8 * rng.random()) * (0.5 + 0.5 * ctx.wetness))


def _crop_states(rng: np.random.Generator, n: int, green: float) -> np.ndarray:
    """Materials of ``n`` crop parcels: green crop, senescent/harvested or bare (ploughed) soil."""
    p = np.array([green, (1 - green) * 0.5, (1 - green) * 0.5])
    return np.array([M["crop_green"], M["crop_senescent"], M["bare_soil"]], np.uint8)[rng.choice(3, n, p=p)]


def _put_parcels(b: _Builder, mask: np.ndarray, ids: np.ndarray, label: int, mats: np.ndarray) -> None:
    """Write parcels ``ids`` (compact ints) inside ``mask``; ``mats[id]`` is each parcel's material."""
    b.put(mask, label, mats[ids], ids)


def centre_pivot(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Circular fields of radius 20-40 px (200-400 m) on a square lattice (pitch 2 r + 1-4 px), one centred on
    ``centre``, the others present with probability 0.7; each circle is split into 1-4 sectors, one crop state
    each; the corners between circles keep the landscape."""
    rng, shape = ctx.rng, ctx.shape
    r = rng.uniform(20, 40)
    pitch = 2 * r + rng.uniform(1, 4)
    u, v = _frame(rng, shape, centre)
    iu, iv = np.round(u / pitch), np.round(v / pitch)
    du, dv = u - iu * pitch, v - iv * pitch
    k = int(np.ceil(1.5 * max(shape) / pitch)) + 1  # lattice cells -k..k cover the patch
    side = 2 * k + 1
    cell = ((iu + k) * side + (iv + k)).astype(np.int64)
    present = rng.random(side * side) < 0.7
    present[k * side + k] = True
    radius = r * rng.uniform(0.85, 1.0, side * side)
    inside = (np.hypot(du, dv) < radius[cell]) & present[cell]
    n_sect = rng.integers(1, 5, side * side)
    ang = (np.arctan2(dv, du) + np.pi) / (2 * np.pi)
    sector = np.minimum(np.floor(ang * n_sect[cell]), 3).astype(np.int64)
    key = cell * 4 + sector
    uniq, inv = _compact(key[inside])
    ids = np.zeros(shape, np.int64)
    ids[inside] = inv
    _put_parcels(b, inside, ids, C["cropland"], _crop_states(rng, len(uniq), _season_green(rng, ctx)))


def _field_mosaic(b: _Builder, ctx: Context, centre: tuple[float, float], width: tuple[float, float],
                  length: tuple[float, float]) -> None:
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    ids, edge = _parcels(ctx, (rng.uniform(*width), rng.uniform(*length)))
    uniq, inv = _compact(ids.ravel())
    inv = inv.reshape(shape)
    mats = _crop_states(rng, len(uniq), _season_green(rng, ctx))
    if rng.random() < 0.5:  # grass margins / tracks between fields on half the scenes
        _put_parcels(b, foot & ~edge, inv, C["cropland"], mats)
        b.put(foot & edge, C["grassland"], M["grass"])
    else:
        _put_parcels(b, foot, inv, C["cropland"], mats)


def field_mosaic_large(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Mechanised rectangular fields: strips 15-35 px wide and 30-70 px long (2-25 ha, Lesiv et al. 2019's medium
    and large classes), gently warped, over a footprint (``_extent``)."""
    _field_mosaic(b, ctx, centre, (15, 35), (30, 70))


def field_mosaic_small(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Smallholder fields: strips 4-8 px wide and 6-14 px long (0.2-1.1 ha, Lesiv et al. 2019's very small and
    small classes), same crop states and footprint as the large mosaic."""
    _field_mosaic(b, ctx, centre, (4, 8), (6, 14))


def terraces(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Contour terraces: strips 2-4 px wide (20-40 m; single benches of 2.5-8 m are sub-pixel) following the
    contours of a hill whose summit lies 10-40 px from ``centre``; strips are cut into fields 8-20 px long; the
    risers between strips are grass on half the scenes."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    a = rng.uniform(0, 2 * np.pi)
    dist = rng.uniform(10, 40)
    summit = (centre[0] + dist * np.sin(a), centre[1] + dist * np.cos(a))
    yy, xx = _grid(*shape)
    dy, dx = yy - np.float32(summit[0]), xx - np.float32(summit[1])
    rad = np.hypot(dy, dx) * (1.0 + 0.15 * smooth_field(rng, shape, 15.0)[0])
    pitch = rng.uniform(2.0, 4.0)
    strip = np.floor(rad / pitch).astype(np.int64)
    arc = (np.arctan2(dy, dx) + np.pi) * np.maximum(rad, 1.0)
    seg = np.floor(arc / rng.uniform(8, 20) + rng.random()).astype(np.int64)
    uniq, inv = _compact((strip * 4096 + (seg - seg.min())).ravel())
    inv = inv.reshape(shape)
    mats = _crop_states(rng, len(uniq), _season_green(rng, ctx))
    riser = np.zeros(shape, bool)
    riser[:-1, :] |= strip[:-1, :] != strip[1:, :]
    riser[:, :-1] |= strip[:, :-1] != strip[:, 1:]
    if rng.random() < 0.5:
        _put_parcels(b, foot & ~riser, inv, C["cropland"], mats)
        b.put(foot & riser, C["grassland"], M["grass"])
    else:
        _put_parcels(b, foot, inv, C["cropland"], mats)


def _tree_crop_ground(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ground between tree rows / in young blocks: grass cover or bare (tilled or herbicided) soil."""
    return np.where(rng.random(n) < 0.5, M["grass"], M["bare_soil"]).astype(np.uint8)


def orchard(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Orchard blocks (15-30 x 20-40 px) of tree rows: one pixel of trees every 2-3 px across the rows (20-30 m,
    wide traditional spacing; OlivaTerm: <100 trees/ha), continuous or every second pixel along them; grass or
    bare soil between rows (per block)."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    ids, _ = _parcels(ctx, (rng.uniform(15, 30), rng.uniform(20, 40)))
    uniq, inv = _compact(ids.ravel())
    inv = inv.reshape(shape)
    ground = _tree_crop_ground(rng, len(uniq))
    lab = np.where(ground == M["grass"], C["grassland"], C["barren"]).astype(np.uint8)
    b.put(foot, lab[inv], ground[inv], inv)
    u, v = _frame(rng, shape, centre)
    pitch = float(rng.choice([2.0, 3.0]))
    along = float(rng.choice([1.0, 2.0]))
    row = (np.floor(v + 0.5) % pitch) == 0
    if along > 1:
        row &= (np.floor(u + 0.5) % along) == 0
    _trees(b, foot & row, ctx, inv)


def plantation(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Oil palm / rubber estate: blocks 25-40 px square (about 6-16 ha) separated by 1 px access roads of bare
    soil on a straight grid; mature blocks are closed canopy (palms at 9 m triangular spacing, FAO 1977, are
    sub-pixel), young blocks (30 %) rows every 2 px over grass or soil."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    ids, edge = _rect_grid(u, v, rng, (25, 40), (25, 40))
    n = int(ids.max()) + 1
    young = rng.random(n) < 0.3
    ground = _tree_crop_ground(rng, n)
    lab = np.where(ground == M["grass"], C["grassland"], C["barren"]).astype(np.uint8)
    b.put(foot, lab[ids], ground[ids], ids)
    row = (np.floor(v + 0.5) % 2) == 0
    tl, tm = (C["broadleaf_evergreen"], M["broadleaf_evergreen"]) if ctx.tropical else _tree_type(ctx)
    b.put(foot & (~young[ids] | row) & ~edge, tl, tm, ids)
    b.put(foot & edge, C["road"], M["bare_soil"])


def greenhouses(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A cluster of plastic greenhouses: rectangles 3-8 x 5-15 px (30-80 m x 50-150 m) on a rotated grid with
    1 px tracks of bare soil; 60-90 % of cells covered, the rest crop parcels."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    ids, edge = _rect_grid(u, v, rng, (3, 8), (5, 15))
    n = int(ids.max()) + 1
    covered = rng.random(n) < rng.uniform(0.6, 0.9)
    mats = np.where(covered, M["greenhouse"], _crop_states(rng, n, _season_green(rng, ctx))).astype(np.uint8)
    _put_parcels(b, foot & ~edge, ids, C["cropland"], mats)
    b.put(foot & edge, C["barren"], M["bare_soil"])
