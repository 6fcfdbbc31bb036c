"""Infrastructure structures: airports, highways, road interchanges, ports, open-pit mines and solar farms."""

from __future__ import annotations

import numpy as np

from geodiv.simearth.layout import C, Context, M, _Builder
from geodiv.simearth.random_fields import smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _footprint, _frame, _rect_grid


def _verge(b: _Builder, mask: np.ndarray) -> None:
    b.put(mask, C["grassland"], M["grass"])


def airport(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Runway through ``centre``: 4.5-6 px wide (45-60 m, ICAO Annex 14 code 4) and longer than the patch
    (>= 1,800 m); a graded grass strip 8-15 px either side; a parallel taxiway 2 px wide 17-19 px off the runway
    axis with connectors every 20-40 px; an apron (15-30 x 20-50 px of pavement) beyond it with terminal buildings
    (roofs, 3-8 px deep)."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _frame(rng, shape, centre)
    side = 1.0 if rng.random() < 0.5 else -1.0
    v = v * side
    half = rng.uniform(2.25, 3.0)
    strip = rng.uniform(8, 15)
    taxi = rng.uniform(17, 19)
    apron_d, apron_l = rng.uniform(15, 30), rng.uniform(20, 50)
    apron_u = rng.uniform(-20, 20)
    grass = (v > -half - strip) & (v < taxi + apron_d + 12)
    _verge(b, grass)
    every = rng.uniform(20, 40)
    conn = (np.abs(((u + rng.uniform(0, every)) % every) - every / 2) < 1.0) & (v > 0) & (v < taxi)
    taxiway = np.abs(v - taxi) < 1.0
    apron = (v >= taxi + 1) & (v < taxi + 1 + apron_d) & (np.abs(u - apron_u) < apron_l / 2)
    b.put(taxiway | conn | apron, C["road"], M["pavement"])
    terminal = (v >= taxi + 1 + apron_d) & (v < taxi + 1 + apron_d + rng.uniform(3, 8)) & (
        np.abs(u - apron_u) < apron_l / 2)
    t_ids = np.floor((u - apron_u) / 8).astype(np.int64)
    b.put(terminal, C["built_up"], M["roof"], t_ids - t_ids.min())
    b.put(np.abs(v) < half, C["road"], M["pavement"])


def _carriageways(rng: np.random.Generator, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dual carriageway across v = 0: two 1-2 px carriageways (2-3 lanes of 3.5 m) either side of a 1-3 px
    median; verges 1-3 px beyond. Returns (pavement, median + verges)."""
    lane = rng.uniform(1.0, 2.0)
    med = rng.uniform(1.0, 3.0) / 2
    verge = rng.uniform(1.0, 3.0)
    a = np.abs(v)
    road = (a >= med) & (a < med + lane)
    green = (a < med) | ((a >= med + lane) & (a < med + lane + verge))
    return road, green


def highway(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A dual carriageway through ``centre`` (see ``_carriageways``), gently curved (radius >= ~1 km) across the
    patch, with a service road (1 px) parallel at 10-25 px on half the scenes."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _frame(rng, shape, centre)
    v = v + rng.uniform(-1, 1) * u * u / 400.0
    road, green = _carriageways(rng, v)
    _verge(b, green)
    b.put(road, C["road"], M["pavement"])
    if rng.random() < 0.5:
        b.put(np.abs(v - rng.choice([-1, 1]) * rng.uniform(10, 25)) < 0.5, C["road"], M["pavement"])


def road_interchange(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Two dual carriageways crossing at ``centre`` (70-110 degrees) with four loop ramps (cloverleaf, ring of
    1 px at radius 6-10 px, 60-100 m) in the quadrants, or (40 %) a diamond: four straight slip roads."""
    rng, shape = ctx.rng, ctx.shape
    theta = rng.uniform(0, np.pi)
    u1, v1 = _frame(rng, shape, centre, theta)
    u2, v2 = _frame(rng, shape, centre, theta + np.deg2rad(rng.uniform(70, 110)))
    r1, g1 = _carriageways(rng, v1)
    r2, g2 = _carriageways(rng, v2)
    _verge(b, g1 | g2)
    ramps = np.zeros(shape, bool)
    if rng.random() < 0.6:
        rad = rng.uniform(6, 10)
        off = rad + 2.5
        for su in (-1, 1):
            for sv in (-1, 1):
                d = np.hypot(u1 - su * off, v1 - sv * off)
                inside = d < rad - 0.5
                _verge(b, inside)
                ramps |= np.abs(d - rad) < 0.6
    else:
        for s in (-1, 1):
            ramps |= (np.abs(v1 - s * (np.abs(u1) * 0.35 + 4)) < 0.6) & (np.abs(u1) < 25)
    b.put(ramps | r1 | r2, C["road"], M["pavement"])


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
