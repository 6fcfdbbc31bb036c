"""Farming structures: centre pivots, field mosaics, terraces, orchards, plantations and greenhouses."""

from __future__ import annotations

import numpy as np

from geodiv.simearth.layout import C, Context, M, _Builder, _parcels, _tree_type
from geodiv.simearth.random_fields import _compact, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _extent, _frame, _grid, _rect_grid, _trees
from geodiv.simearth.structures.shares import crop_shares, season_green, states_by_area, tree_crop_shares


def _crop_states(rng: np.random.Generator, n: int, green: float) -> np.ndarray:
    """Materials of ``n`` crop parcels: green crop, senescent/harvested or bare (ploughed) soil."""
    p = np.array([green, (1 - green) * 0.5, (1 - green) * 0.5])
    return np.array([M["crop_green"], M["crop_senescent"], M["bare_soil"]], np.uint8)[rng.choice(3, n, p=p)]


#: Materials (and labels) of the crop-field states: grass (pasture, fallow), green crop, senescent crop, bare soil.
_FIELD_MATS = np.array([M["grass"], M["crop_green"], M["crop_senescent"], M["bare_soil"]], np.uint8)
_FIELD_LABELS = np.array([C["grassland"], C["cropland"], C["cropland"], C["cropland"]], np.uint8)


def _crop_fields(b: _Builder, ctx: Context, foot: np.ndarray, ids: np.ndarray, edge: np.ndarray | None) -> None:
    """Paint the crop parcels ``ids`` (compact ints) inside ``foot`` with the group's shared area shares
    (``shares.crop_shares``): the edges (margins, risers) are grass on parcels chosen by area until the grass share
    is reached (all of them if it is larger), whole parcels become grass for the rest, and the other parcels take
    the season's crop states by area."""
    rng = ctx.rng
    sh = crop_shares(rng, ctx)
    target = sh.grass * float(foot.sum())
    grass_edge = np.zeros(foot.shape, bool)
    if edge is not None:
        on = foot & edge
        n_edge = int(on.sum())
        if n_edge:
            take = min(target, n_edge) / n_edge
            grass_edge = on & (states_by_area(rng, ids, on, (take, 1 - take)) == 0)[ids]
    body = foot & ~grass_edge
    rest = max(target - float(grass_edge.sum()), 0.0) / max(float(body.sum()), 1.0)
    state = states_by_area(rng, ids, body, (rest, *(s * (1 - rest) for s in sh.states)))
    b.put(body, _FIELD_LABELS[state][ids], _FIELD_MATS[state][ids], ids)
    b.put(grass_edge, C["grassland"], M["grass"])


def _put_parcels(b: _Builder, mask: np.ndarray, ids: np.ndarray, label: int, mats: np.ndarray) -> None:
    """Write parcels ``ids`` (compact ints) inside ``mask``; ``mats[id]`` is each parcel's material."""
    b.put(mask, label, mats[ids], ids)


def centre_pivot(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Circular fields of radius 20-40 px (200-400 m) on a square lattice (pitch 2 r + 1-4 px), one centred on
    ``centre``; lattice cells are added nearest first (ties at random) until their area matches the farm's extent
    (``_extent``, as for every crop structure); each circle is split into 1-4 sectors and the four corners of its
    cell (dryland crops, fallow or grass) are parcels of their own, all taking the group's shared states
    (``_crop_fields``)."""
    rng, shape = ctx.rng, ctx.shape
    target = float(_extent(rng, shape, centre).sum())
    r = rng.uniform(20, 40)
    pitch = 2 * r + rng.uniform(1, 4)
    u, v = _frame(rng, shape, centre)
    iu, iv = np.round(u / pitch), np.round(v / pitch)
    du, dv = u - iu * pitch, v - iv * pitch
    k = int(np.ceil(1.5 * max(shape) / pitch)) + 1  # lattice cells -k..k cover the patch
    side = 2 * k + 1
    cell = ((iu + k) * side + (iv + k)).astype(np.int64)
    area = np.bincount(cell.ravel(), minlength=side * side).astype(np.float64)
    lat = np.arange(side * side)
    dist = np.hypot(lat // side - k, lat % side - k) + 0.5 * rng.random(side * side)
    order = np.argsort(dist, kind="stable")  # the centre cell first
    mid = np.cumsum(area[order]) - area[order] / 2
    present = np.zeros(side * side, bool)
    present[order[mid < target]] = True
    present[k * side + k] = True
    radius = r * rng.uniform(0.85, 1.0, side * side)
    circle = np.hypot(du, dv) < radius[cell]
    n_sect = rng.integers(1, 5, side * side)
    ang = (np.arctan2(dv, du) + np.pi) / (2 * np.pi)
    part = np.where(circle, np.minimum(np.floor(ang * n_sect[cell]), 3), 4 + np.floor(ang * 4) % 4)
    ids = _compact((cell * 8 + part.astype(np.int64)).ravel())[1].reshape(shape)
    _crop_fields(b, ctx, present[cell], ids, None)


def _field_mosaic(b: _Builder, ctx: Context, centre: tuple[float, float], width: tuple[float, float],
                  length: tuple[float, float]) -> None:
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    ids, edge = _parcels(ctx, (rng.uniform(*width), rng.uniform(*length)))
    _crop_fields(b, ctx, foot, _compact(ids.ravel())[1].reshape(shape), edge)


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
    risers between strips are grass as far as the scene's grass share goes (``_crop_fields``)."""
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
    inv = _compact((strip * 4096 + (seg - seg.min())).ravel())[1]
    riser = np.zeros(shape, bool)
    riser[:-1, :] |= strip[:-1, :] != strip[1:, :]
    riser[:, :-1] |= strip[:, :-1] != strip[:, 1:]
    _crop_fields(b, ctx, foot, inv.reshape(shape), riser)


def _tree_crop_ground(b: _Builder, rng: np.random.Generator, mask: np.ndarray, ids: np.ndarray, bare: float) -> None:
    """Ground between tree rows / in young and replanted blocks: bare (tilled or herbicided) soil on blocks ``ids``
    chosen by area until ``bare`` of ``mask`` is reached, grass cover on the others."""
    is_bare = states_by_area(rng, ids, mask, (bare, 1 - bare)) == 0
    b.put(mask, np.where(is_bare, C["barren"], C["grassland"]).astype(np.uint8)[ids],
          np.where(is_bare, M["bare_soil"], M["grass"]).astype(np.uint8)[ids], ids)


def orchard(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Orchard blocks (15-30 x 20-40 px) of straight tree rows covering the scene's canopy share
    (``shares.tree_crop_shares``): rows 1-2 px wide (10-20 m crowns) at the pitch that gives that share where it is
    at most half (20-67 m, wide traditional spacing; OlivaTerm: <100 trees/ha), else 1-2 px alleys between
    hedgerows; sparse rows (under 35 %) are every second pixel along the row on half the scenes; grass or bare soil
    between rows (per block, by the scene's bare share)."""
    rng, shape = ctx.rng, ctx.shape
    sh = tree_crop_shares(rng)
    foot = _extent(rng, shape, centre)
    ids, _ = _parcels(ctx, (rng.uniform(15, 30), rng.uniform(20, 40)))
    inv = _compact(ids.ravel())[1].reshape(shape)
    u, v = _frame(rng, shape, centre)
    sparse = sh.trees < 0.35 and rng.random() < 0.5
    cover = 2 * sh.trees if sparse else sh.trees
    width = rng.uniform(1.0, 2.0)
    pitch = width / cover if cover <= 0.5 else width / (1 - cover)
    row = ((v / pitch) % 1.0) < cover
    if sparse:
        row &= (np.floor(u + 0.5) % 2) == 0
    _tree_crop_ground(b, rng, foot & ~row, inv, sh.bare_ground)
    _trees(b, foot & row, ctx, inv)


def plantation(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Oil palm / rubber estate: blocks 25-40 px square (about 6-16 ha) separated by 1 px access roads of bare
    soil on a straight grid; mature blocks are closed canopy (palms at 9 m triangular spacing, FAO 1977, are
    sub-pixel), young blocks (10-50 % of the area) rows every 2 px over grass or soil, replanted blocks bare or
    grass; blocks take these states by area so that the canopy covers the scene's share
    (``shares.tree_crop_shares``)."""
    rng, shape = ctx.rng, ctx.shape
    sh = tree_crop_shares(rng)
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    ids, edge = _rect_grid(u, v, rng, (25, 40), (25, 40))
    blocks = foot & ~edge
    canopy_share = min(sh.trees * float(foot.sum()) / max(float(blocks.sum()), 1.0), 1.0)
    young = min(rng.uniform(0.1, 0.5), 2 * canopy_share, 2 * (1 - canopy_share))
    mature = canopy_share - young / 2
    state = states_by_area(rng, ids, blocks, (mature, young, max(1 - mature - young, 0.0)))
    row = (np.floor(v + 0.5) % 2) == 0
    canopy = blocks & ((state[ids] == 0) | ((state[ids] == 1) & row))
    roads = foot & edge
    ground = blocks & ~canopy
    bare = (sh.bare_ground * float((ground | roads).sum()) - float(roads.sum())) / max(float(ground.sum()), 1.0)
    _tree_crop_ground(b, rng, ground, ids, min(max(bare, 0.0), 1.0))
    tl, tm = (C["broadleaf_evergreen"], M["broadleaf_evergreen"]) if ctx.tropical else _tree_type(ctx)
    b.put(canopy, tl, tm, ids)
    b.put(roads, C["road"], M["bare_soil"])


def greenhouses(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A cluster of plastic greenhouses: rectangles 3-8 x 5-15 px (30-80 m x 50-150 m) on a rotated grid with
    1 px tracks of bare soil; 60-90 % of cells covered, the rest crop parcels."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    ids, edge = _rect_grid(u, v, rng, (3, 8), (5, 15))
    n = int(ids.max()) + 1
    covered = rng.random(n) < rng.uniform(0.6, 0.9)
    mats = np.where(covered, M["greenhouse"], _crop_states(rng, n, season_green(rng, ctx))).astype(np.uint8)
    _put_parcels(b, foot & ~edge, ids, C["cropland"], mats)
    b.put(foot & edge, C["barren"], M["bare_soil"])
