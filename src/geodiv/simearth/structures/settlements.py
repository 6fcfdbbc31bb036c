"""Settlement structures: dense urban grids, informal settlements, suburbs and villages."""

from __future__ import annotations

import numpy as np

from geodiv.simearth.layout import C, Context, M, _Builder
from geodiv.simearth.random_fields import _compact, _quantile_mask, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _extent, _frame, _grid, _trees
from geodiv.simearth.structures.shares import settlement_shares, states_by_area


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


def _built_cells(rng: np.random.Generator, lots: np.ndarray, ids: np.ndarray, roof_px: float) -> np.ndarray:
    """Which building cells ``ids`` (compact ints) inside ``lots`` are roofs: cells chosen by area until ``roof_px``
    pixels are covered (all of them if the lots are smaller); the others are yards."""
    share = min(roof_px / max(float(lots.sum()), 1.0), 1.0)
    return states_by_area(rng, ids, lots, (share, 1 - share)) == 0


def _grid_spacing(street: float, share: float, aspect: float) -> float:
    """Block pitch (px) along one axis of an orthogonal grid whose streets (``street`` px wide, blocks ``aspect``
    times longer across) cover ``share`` of the ground: (1 - x) (1 - x / aspect) = 1 - share, x = street / pitch."""
    a = 1.0 + 1.0 / aspect
    x = (a - np.sqrt(a * a - 4.0 * share / aspect)) * aspect / 2.0
    return street / x


def dense_urban_grid(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """An orthogonal street grid (one orientation; Boeing 2019: grids are most ordered in North America): streets
    1-2 px wide, blocks (aspect 0.7-1.4) as large as the scene's street share gives (``shares.settlement_shares``:
    about 10-40 px, 100-400 m); blocks packed with large buildings of 3-7 px sides (perimeter blocks, 90-4,900 m^2
    footprints), chosen by area up to the scene's roof share; the other building cells are courtyards and lots
    (``_yards``)."""
    rng, shape = ctx.rng, ctx.shape
    sh = settlement_shares(rng)
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    street, aspect = rng.uniform(1.0, 2.0), rng.uniform(0.7, 1.4)
    bu = _grid_spacing(street, sh.street, aspect)
    bv = bu * aspect
    pu, pv = (u + rng.uniform(0, bu)) % bu, (v + rng.uniform(0, bv)) % bv
    road = foot & ((pu < street) | (pv < street))
    su, sv = rng.uniform(3, 7), rng.uniform(3, 7)
    iu, iv = np.floor(u / su).astype(np.int64), np.floor(v / sv).astype(np.int64)
    ids = _compact(((iu - iu.min()) * (int(iv.max() - iv.min()) + 1) + (iv - iv.min())).ravel())[1].reshape(shape)
    lots = foot & ~road
    built = _built_cells(rng, lots, ids, sh.roof * float(foot.sum()))
    _buildings(b, lots & built[ids], ids)
    _yards(b, ctx, lots & ~built[ids])
    b.put(road, C["road"], _street_material(rng, site))


def informal_settlement(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Organic fabric: alleys follow the zero set of a smooth random field (scale 3-6 px: curving, branching,
    no orientation; Mottelson & Venerandi 2020), as wide as the scene's street share gives
    (``shares.settlement_shares``); the rest is packed with buildings of 1-2 px (10-20 m) up to the scene's roof
    share, yards (``_yards``) between."""
    rng, shape = ctx.rng, ctx.shape
    sh = settlement_shares(rng)
    foot = _extent(rng, shape, centre)
    f = smooth_field(rng, shape, rng.uniform(3, 6))[0]
    alley = _quantile_mask(-np.abs(f), sh.street, foot) & foot
    yy, xx = _grid(*shape)
    s = float(rng.choice([1.0, 2.0]))
    ids = (np.floor((yy + rng.integers(0, 2)) / s) * 2048 + np.floor((xx + rng.integers(0, 2)) / s)).astype(np.int64)
    ids = _compact(ids.ravel())[1].reshape(shape)
    lots = foot & ~alley
    built = _built_cells(rng, lots, ids, sh.roof * float(foot.sum()))
    _yards(b, ctx, lots & ~built[ids])
    _buildings(b, lots & built[ids], ids)
    b.put(alley, C["road"], _street_material(rng, site))


def suburban(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Low-rise detached housing: gently curved parallel streets (1 px) as far apart as the scene's street share
    gives (``shares.settlement_shares``; 5-12.5 px); houses 1-2 px wide every 2-4 px along both sides of each
    street, set back 1 px, as deep (1 px up to the half-block) as the scene's roof share needs; gardens
    (``_yards``) between."""
    rng, shape = ctx.rng, ctx.shape
    sh = settlement_shares(rng)
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    v = v + 3.0 * smooth_field(rng, shape, 25.0)[0]
    gap = float(np.clip(1.0 / sh.street, 5.0, 12.5))
    pv = (v + rng.uniform(0, gap)) % gap
    street = foot & (pv < 1.0)
    garden = foot & ~street
    size = float(rng.choice([1.0, 2.0]))
    every = size + rng.uniform(1.0, 2.0)
    depth = float(np.clip(sh.roof * gap * every / (2 * size), 1.0, (gap - 3.0) / 2))
    row = np.floor((v + rng.uniform(0, gap)) / gap).astype(np.int64)
    side = (pv >= 2.0) & (pv < 2.0 + depth) | (pv >= gap - 1.0 - depth) & (pv < gap - 1.0)
    slot = np.floor(u / every).astype(np.int64)
    house = garden & side & (((u / every) - slot) * every < size)
    key = (row - row.min()) * 8192 + (slot - slot.min()) * 2 + (pv >= gap / 2)
    ids = _compact(key.ravel())[1].reshape(shape)
    _yards(b, ctx, garden & ~house)
    _buildings(b, house, ids)
    b.put(street, C["road"], _street_material(rng, site))


def village(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A nucleated village: buildings of 1 px (60 %) or 2 px (filling their cell: compounds), one per occupied cell
    of a 2 px lattice, cells drawn with a Gaussian preference for ``centre`` (std 0.5-0.8 x the footprint's radius)
    until the scene's roof share of the footprint is covered (``shares.settlement_shares``), one at the centre;
    2-8 straight tracks (1 px) radiating from it and, up to the scene's street share, up to 6 wobbly ring lanes;
    gardens (``_yards``) over the rest of the footprint (``_extent``)."""
    rng, shape = ctx.rng, ctx.shape
    h, w = shape
    sh = settlement_shares(rng)
    foot = _extent(rng, shape, centre)
    n_foot = float(foot.sum())
    radius = np.sqrt(max(n_foot, 1.0) / np.pi)
    want = sh.street * n_foot
    tracks = np.zeros(shape, bool)
    for ang in rng.uniform(0, 2 * np.pi, int(np.clip(round(want / radius), 2, 8))):
        u, v = _frame(rng, shape, centre, ang)
        tracks |= (np.abs(v) < 0.5) & (u > 0) & foot
    yy, xx = _grid(*shape)
    rings = rng.uniform(0.25, 0.9, 6) * radius
    if tracks.sum() < want:  # wobbly ring lanes while the street share is not reached
        d = np.hypot(yy - np.float32(centre[0]), xx - np.float32(centre[1])) + 2.0 * smooth_field(rng, shape, 8.0)[0]
        for ring in rings:
            tracks |= (np.abs(d - ring) < 0.5) & foot
            if tracks.sum() >= want:
                break
    oy, ox = (int(o) for o in rng.integers(0, 2, 2))
    ncx = (w + 1) // 2 + 1
    yi, xi = yy.astype(np.int64) + oy, xx.astype(np.int64) + ox
    cy, cx = yi // 2, xi // 2
    cell = cy * ncx + cx
    n_cell = int(cell.max()) + 1
    ccy, ccx = (np.arange(n_cell) // ncx) * 2 - oy + 0.5, (np.arange(n_cell) % ncx) * 2 - ox + 0.5
    sd = radius * rng.uniform(0.5, 0.8)
    weight = np.exp(-((ccy - centre[0]) ** 2 + (ccx - centre[1]) ** 2) / (2 * sd * sd))
    size = np.where(rng.random(n_cell) < 0.4, 2, 1)
    key = rng.exponential(size=n_cell) / np.maximum(weight, 1e-300)
    key[np.bincount(cell[foot], minlength=n_cell) == 0] = np.inf
    mid = cell[int(round(centre[0])) % h, int(round(centre[1])) % w]
    key[mid] = -1.0
    order = np.argsort(key, kind="stable")
    area = (size * size)[order]
    chosen = np.zeros(n_cell, bool)
    chosen[order[(np.cumsum(area) - area / 2 < sh.roof * n_foot) & np.isfinite(key[order])]] = True
    chosen[mid] = True
    inner = ((yi % 2) < size[cell]) & ((xi % 2) < size[cell])
    house = chosen[cell] & inner & (foot | (cell == mid))
    house[int(round(centre[0])) % h, int(round(centre[1])) % w] = True  # a building at the centre
    _yards(b, ctx, foot & ~house & ~tracks)
    b.put(tracks & ~house, C["road"], _street_material(rng, site))
    _buildings(b, house, cell)
