"""Settlement structures: dense urban grids, informal settlements, suburbs and villages."""

from __future__ import annotations

import numpy as np

from geodiv.simearth.layout import C, Context, M, _Builder
from geodiv.simearth.random_fields import _compact, _quantile_mask, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _extent, _frame, _grid, _trees


def _paved(site: Site) -> float:
    """Share of paved local streets: 35 % of roads are paved worldwide, mostly in North America and Europe;
    unpaved roads dominate in South America and Africa (Rodrigue, The Geography of Transport Systems)."""
    return {"North America": 0.9, "Europe": 0.9, "Oceania": 0.6, "Asia": 0.5, "South America": 0.25,
            "Africa": 0.2}.get(site.continent or "", 0.35)


def _street_material(rng: np.random.Generator, site: Site) -> int:
    return M["pavement"] if rng.random() < _paved(site) else M["bare_soil"]



def _buildings(b: _Builder, mask: np.ndarray, ids: np.ndarray) -> None:
    """Roofs: one roof spectrum per building id."""
    b.put(mask, C["built_up"], M["roof"], ids)


def _yards(b: _Builder, ctx: Context, mask: np.ndarray) -> None:
    """Open ground between buildings, the same mix in every settlement morphology: trees, grass and bare soil
    patches (a 1.5 px field; tree share 15-40 %, bare share 20-50 % of the rest, more where dry)."""
    rng = ctx.rng
    f, g = smooth_field(rng, ctx.shape, 1.5, n=2)
    tree = mask & _quantile_mask(f, rng.uniform(0.15, 0.4) * (0.5 + 0.5 * ctx.wetness), mask)
    rest = mask & ~tree
    bare = rest & _quantile_mask(g, rng.uniform(0.2, 0.5) + 0.3 * (1 - ctx.wetness), rest)
    _trees(b, tree, ctx)
    b.put(bare, C["barren"], M["bare_soil"])
    b.put(rest & ~bare, C["grassland"], M["grass"])


def dense_urban_grid(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """An orthogonal street grid (one orientation; Boeing 2019: grids are most ordered in North America): blocks
    8-15 px (80-150 m) between streets 2 px wide; blocks packed with large buildings of 3-7 px sides (perimeter
    blocks, 90-4,900 m^2 footprints); 0-15 % of building cells are yards (``_yards``)."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    bu, bv = rng.uniform(8, 15), rng.uniform(8, 15)
    street = 2.0
    pu, pv = (u + rng.uniform(0, bu)) % bu, (v + rng.uniform(0, bv)) % bv
    road = foot & ((pu < street) | (pv < street))
    su, sv = rng.uniform(3, 7), rng.uniform(3, 7)
    iu, iv = np.floor(u / su).astype(np.int64), np.floor(v / sv).astype(np.int64)
    ids = _compact(((iu - iu.min()) * (int(iv.max() - iv.min()) + 1) + (iv - iv.min())).ravel())[1].reshape(shape)
    lots = foot & ~road
    yard = rng.random(int(ids.max()) + 1) < rng.uniform(0.0, 0.15)
    _buildings(b, lots & ~yard[ids], ids)
    _yards(b, ctx, lots & yard[ids])
    b.put(road, C["road"], _street_material(rng, site))


def informal_settlement(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Organic fabric: alleys are the zero set of a smooth random field (scale 3-6 px: curving, branching,
    no orientation; Mottelson & Venerandi 2020), 1 px wide; the rest is packed with buildings of 1-2 px
    (10-20 m) at 65-90 % coverage, yards (``_yards``) between."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    f = smooth_field(rng, shape, rng.uniform(3, 6))[0]
    alley = np.zeros(shape, bool)
    pos = f > 0
    alley[:-1, :] |= pos[:-1, :] != pos[1:, :]
    alley[:, :-1] |= pos[:, :-1] != pos[:, 1:]
    yy, xx = _grid(*shape)
    s = float(rng.choice([1.0, 2.0]))
    ids = (np.floor((yy + rng.integers(0, 2)) / s) * 2048 + np.floor((xx + rng.integers(0, 2)) / s)).astype(np.int64)
    ids = _compact(ids.ravel())[1].reshape(shape)
    built = rng.random(int(ids.max()) + 1) < rng.uniform(0.65, 0.9)
    lots = foot & ~alley
    _yards(b, ctx, lots & ~built[ids])
    _buildings(b, lots & built[ids], ids)
    b.put(foot & alley, C["road"], _street_material(rng, site))


def suburban(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Low-rise detached housing: gently curved parallel streets (1 px) 6-10 px apart; houses of 1-2 px every
    2-4 px along both sides of each street, set back 1 px; gardens (``_yards``) between."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    v = v + 3.0 * smooth_field(rng, shape, 25.0)[0]
    gap = rng.uniform(6, 10)
    pv = (v + rng.uniform(0, gap)) % gap
    street = foot & (pv < 1.0)
    garden = foot & ~street
    _yards(b, ctx, garden)
    every = rng.uniform(2.0, 4.0)
    size = float(rng.choice([1.0, 2.0]))
    row = np.floor((v + rng.uniform(0, gap)) / gap).astype(np.int64)
    side = (pv >= 2.0) & (pv < 2.0 + size) | (pv >= gap - 1.0 - size) & (pv < gap - 1.0)
    slot = np.floor(u / every).astype(np.int64)
    house = garden & side & (((u / every) - slot) * every < size)
    key = (row - row.min()) * 8192 + (slot - slot.min()) * 2 + (pv >= gap / 2)
    ids = _compact(key.ravel())[1].reshape(shape)
    _buildings(b, house, ids)
    b.put(street, C["road"], _street_material(rng, site))


def village(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A nucleated village: 15-80 buildings of 1-2 px scattered around ``centre`` (Gaussian, std 6-14 px),
    2-4 straight tracks (1 px) radiating from it, and gardens (``_yards``) around the houses (within 2.2 std)."""
    rng, shape = ctx.rng, ctx.shape
    h, w = shape
    sd = rng.uniform(6, 14)
    n = int(rng.integers(15, 81))
    yy, xx = _grid(*shape)
    near = np.hypot(yy - np.float32(centre[0]), xx - np.float32(centre[1])) < 2.2 * sd
    _yards(b, ctx, near & (smooth_field(rng, shape, 2.0)[0] > 0.0))
    for ang in rng.uniform(0, 2 * np.pi, rng.integers(2, 5)):
        u, v = _frame(rng, shape, centre, ang)
        b.put((np.abs(v) < 0.5) & (u > 0), C["road"], _street_material(rng, site))
    cy = np.round(centre[0] + rng.normal(0, sd, n)).astype(np.int64)
    cx = np.round(centre[1] + rng.normal(0, sd, n)).astype(np.int64)
    big = rng.random(n) < 0.4
    ids = np.full(shape, -1, np.int64)
    for k in range(n):
        r0, c0 = cy[k], cx[k]
        r1, c1 = r0 + 1 + big[k], c0 + 1 + big[k]
        ids[max(r0, 0):max(min(r1, h), 0), max(c0, 0):max(min(c1, w), 0)] = k
    ids[int(round(centre[0])) % h, int(round(centre[1])) % w] = n  # a building at the centre
    mask = ids >= 0
    _buildings(b, mask, np.where(mask, ids, 0))
