"""Infrastructure structures: airports, highways, road interchanges, ports, open-pit mines and solar farms."""

from __future__ import annotations

import numpy as np

from geodiv.simearth.layout import C, Context, M, _Builder
from geodiv.simearth.random_fields import _quantile_mask, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _footprint, _frame, _rect_grid
from geodiv.simearth.structures.shares import pavement_shares


def _verge(b: _Builder, mask: np.ndarray) -> None:
    b.put(mask, C["grassland"], M["grass"])


def _grass_nearest(b: _Builder, dist: np.ndarray, paved: np.ndarray, share: float) -> None:
    """Grass (runway strips, verges, medians, embankments) on ``share`` of the patch: the unpaved pixels nearest
    the pavement by ``dist`` (px from its axis)."""
    free = ~paved
    n_free = int(free.sum())
    if n_free:
        _verge(b, free & _quantile_mask(-dist, min(share * paved.size / n_free, 1.0), free))


def _road_length(v: np.ndarray) -> float:
    """Length (px) in the patch of the line v = 0."""
    return max(float((np.abs(v) < 0.5).sum()), 1.0)


def airport(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Runway through ``centre``: 4.5-6 px wide (45-60 m, ICAO Annex 14 code 4) and longer than the patch
    (>= 1,800 m); a parallel taxiway 2 px wide 17-19 px off the runway axis with connectors every 20-40 px, and an
    apron 15-30 px deep beyond it with terminal buildings (roofs, 3-8 px deep), as far as the scene's pavement share
    goes (``shares.pavement_shares``: the apron takes what runway and taxiway leave; no taxiway where they would
    exceed it); the graded grass strip is the scene's grass share nearest the runway and taxiway."""
    rng, shape = ctx.rng, ctx.shape
    sh = pavement_shares(rng)
    u, v = _frame(rng, shape, centre)
    side = 1.0 if rng.random() < 0.5 else -1.0
    v = v * side
    n_px, length = float(v.size), _road_length(v)
    half = rng.uniform(2.25, 3.0)
    taxi = rng.uniform(17, 19)
    every = rng.uniform(20, 40)
    apron_d, apron_u = rng.uniform(15, 30), rng.uniform(-20, 20)
    runway = np.abs(v) < half
    rest = sh.pavement * n_px - float(runway.sum())
    paved = runway.copy()
    terminal = np.zeros(shape, bool)
    core = half
    if rest >= 2 * length:
        conn = (np.abs(((u + rng.uniform(0, every)) % every) - every / 2) < 1.0) & (v > 0) & (v < taxi)
        taxiway = (np.abs(v - taxi) < 1.0) | conn
        rest -= float((taxiway & ~paved).sum())
        paved |= taxiway
        core = taxi + 1
        apron_l = min(max(rest, 0.0) / apron_d, 0.9 * max(shape))
        if apron_l >= 8:
            apron = (v >= taxi + 1) & (v < taxi + 1 + apron_d) & (np.abs(u - apron_u) < apron_l / 2)
            terminal = (v >= taxi + 1 + apron_d) & (v < taxi + 1 + apron_d + rng.uniform(3, 8)) & (
                np.abs(u - apron_u) < apron_l / 2)
            t_ids = np.floor((u - apron_u) / 8).astype(np.int64)
            b.put(terminal, C["built_up"], M["roof"], t_ids - t_ids.min())
            paved |= apron
    _grass_nearest(b, np.maximum(np.maximum(-half - v, v - core), 0), paved | terminal, sh.grass)
    b.put(paved & ~terminal, C["road"], M["pavement"])


def _carriageways(v: np.ndarray, lane: float, med: float) -> np.ndarray:
    """Dual carriageway across v = 0: two carriageways ``lane`` px wide either side of a median ``2 med`` px wide."""
    a = np.abs(v)
    return (a >= med) & (a < med + lane)


def _lane(pavement_px: float) -> float:
    """Carriageway width (px) for ``pavement_px`` of pavement across a dual carriageway: 1-2.5 px (2-5 lanes of 3.5 m
    with shoulders)."""
    return float(np.clip(pavement_px / 2, 1.0, 2.5))


def highway(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A dual carriageway through ``centre``, gently curved (radius >= ~1 km) across the patch: carriageways 1-2.5 px
    (2-5 lanes with shoulders) and frontage / service roads (1-2 px, at 4-25 px) to the scene's pavement share
    (``shares.pavement_shares``), a 1-3 px median; the scene's grass share nearest the axis is verge and
    embankment."""
    rng, shape = ctx.rng, ctx.shape
    sh = pavement_shares(rng)
    u, v = _frame(rng, shape, centre)
    v = v + rng.uniform(-1, 1) * u * u / 400.0
    n_px, length = float(v.size), _road_length(v)
    width = sh.pavement * n_px / length
    lane = _lane(width)
    med = rng.uniform(1.0, 3.0) / 2
    road = _carriageways(v, lane, med)
    rest = width - 2 * lane
    n_serv = int(np.ceil(rest / 2)) if rest > 0.5 else 0
    side = rng.choice([-1, 1])
    for k in range(n_serv):
        off = med + lane + rng.uniform(4, 25)
        road |= np.abs(v - side * (-1) ** k * off) < rest / n_serv / 2
    _grass_nearest(b, np.abs(v), road, sh.grass)
    b.put(road, C["road"], M["pavement"])


def road_interchange(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Two dual carriageways crossing at ``centre`` (70-110 degrees) with four loop ramps (cloverleaf, ring of
    1 px at radius 6-10 px, 60-100 m) in the quadrants, or (40 %) a diamond: four straight slip roads; carriageways
    1-2.5 px to the scene's pavement share (``shares.pavement_shares``), the loops' infields and the grass share
    nearest the roads are verge."""
    rng, shape = ctx.rng, ctx.shape
    sh = pavement_shares(rng)
    theta = rng.uniform(0, np.pi)
    u1, v1 = _frame(rng, shape, centre, theta)
    u2, v2 = _frame(rng, shape, centre, theta + np.deg2rad(rng.uniform(70, 110)))
    ramps = np.zeros(shape, bool)
    dist = np.minimum(np.abs(v1), np.abs(v2))
    if rng.random() < 0.6:
        rad = rng.uniform(6, 10)
        off = rad + 2.5
        for su in (-1, 1):
            for sv in (-1, 1):
                d = np.hypot(u1 - su * off, v1 - sv * off)
                dist = np.where(d < rad, 0, dist)
                ramps |= np.abs(d - rad) < 0.6
    else:
        for s in (-1, 1):
            ramps |= (np.abs(v1 - s * (np.abs(u1) * 0.35 + 4)) < 0.6) & (np.abs(u1) < 25)
    width = max(sh.pavement * float(v1.size) - float(ramps.sum()), 0.0) / (_road_length(v1) + _road_length(v2))
    lane = _lane(width)
    road = ramps | _carriageways(v1, lane, rng.uniform(1.0, 3.0) / 2) | _carriageways(
        v2, lane, rng.uniform(1.0, 3.0) / 2)
    _grass_nearest(b, dist, road, sh.grass)
    b.put(road, C["road"], M["pavement"])


def port(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A shoreline through ``centre`` (water on one side), a quay of pavement 3-6 px deep along it, piers
    3-5 px wide and 15-30 px long into the water every 15-25 px, container/warehouse yards behind the quay: rows
    of 1 x 3 px stacks (roofs) on pavement up to 25-40 px inland."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _frame(rng, shape, centre)
    shore = v + 2.0 * smooth_field(rng, shape, 20.0)[0]
    water = shore > 0
    b.put(water, C["water"], M["water"])
    quay = rng.uniform(3, 6)
    yard = rng.uniform(25, 40)
    land_paved = (shore <= 0) & (shore > -yard)
    b.put(land_paved, C["road"], M["pavement"])
    every, width, length = rng.uniform(15, 25), rng.uniform(3, 5), rng.uniform(15, 30)
    pier = water & (shore < length) & (((u + rng.uniform(0, every)) % every) < width)
    b.put(pier, C["road"], M["pavement"])
    stacks = land_paved & (v < -quay) & ((np.floor(v) % 2) == 0) & ((np.floor(u) % 4) != 3)
    ids = (np.floor(u / 4).astype(np.int64) + 64) * 256 + (np.floor(-v).astype(np.int64) % 256)
    b.put(stacks, C["built_up"], M["roof"], ids - ids.min())


def open_pit_mine(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """An elliptical pit (semi-axes 18-40 px x aspect 1-2) centred on ``centre``: benches as concentric rings
    2-3 px wide (20-30 m) alternating rock and bare soil; water at the bottom in 40 % of pits; a 1 px haul road
    from rim to floor; waste dumps (bare soil / rock blobs) around it."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _frame(rng, shape, centre)
    a = rng.uniform(18, 40)
    e = np.hypot(u / a, v * rng.uniform(1, 2) / a)
    dumps = _footprint(rng, shape, centre, a * 1.6) & (e >= 1) & (smooth_field(rng, shape, 5.0)[0] > 0.3)
    b.put(dumps, C["barren"], np.where(rng.random() < 0.5, M["bare_soil"], M["rock"]))
    pit = e < 1
    bench = np.floor(e * a / rng.uniform(2, 3)).astype(np.int64)
    mats = np.where(bench % 2 == 0, M["rock"], M["bare_soil"]).astype(np.uint8)
    b.put(pit, C["barren"], mats, bench)
    if rng.random() < 0.4:
        b.put(e < rng.uniform(0.12, 0.3), C["water"], M["water"])
    b.put(pit & (np.abs(v) < 0.6) & (u > 0), C["road"], M["bare_soil"])


def solar_farm(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A rectangular farm (30-70 x 30-70 px, 9-49 ha; NREL: 8.9 acres/MW, i.e. 2-14 MW) of panel blocks
    8-15 px on a side separated by 1 px tracks of bare soil; module rows at a 5-12 m pitch are sub-pixel
    (the ``solar_panel`` material mixes modules and ground)."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _frame(rng, shape, centre)
    foot = (np.abs(u) < rng.uniform(15, 35)) & (np.abs(v) < rng.uniform(15, 35))
    ids, edge = _rect_grid(u, v, rng, (8, 15), (8, 15))
    b.put(foot & ~edge, C["built_up"], M["solar_panel"], ids)
    b.put(foot & edge, C["barren"], M["bare_soil"])
