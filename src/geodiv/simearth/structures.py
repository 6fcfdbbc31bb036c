"""Structures: spatial objects and arrangements painted over the landscape (fields, settlements, infrastructure ...).

Each of the ``STRUCTURES`` has a generator with documented geometry in pixels at 10 m (docs/simearth.md gives the
sources of every number). A generator paints one structure centred on a given pixel over the landscape that
``landscape.build_layout`` made for the location, using the shipped materials (``landscape.MATERIALS``). Where a
structure occurs, and how often, is ``prevalence``: a function of the real layers geodiv ships (land-cover
fractions of the window, Koppen-Geiger climate, continent, coastal cells) and of cited real-world facts; never of
any study outcome.

Arrangement, not material, tells most classes apart: ``ARRANGEMENT_GROUPS`` gathers classes that draw the same
materials from the same distributions and differ mainly in geometry (centre pivots vs rectangular field mosaics vs
terraces of the same crops, grid vs organic settlements, meandering vs braided rivers, runway vs highway, ...).
Crop states follow a per-scene season draw, roofs and street surfaces the region, the background the location.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

from geodiv.simearth.landscape import (
    C,
    Context,
    M,
    _Builder,
    _compact,
    _parcels,
    _quantile_mask,
    _tree_type,
    smooth_field,
)
from geodiv.simearth.spectra import climate_vigour

#: Structure classes (the ``scene`` task's classes, in this order).
STRUCTURES: tuple[str, ...] = (
    # farming
    "centre_pivot", "field_mosaic_large", "field_mosaic_small", "terraces", "orchard", "plantation", "greenhouses",
    # infrastructure
    "airport", "highway", "road_interchange", "port", "open_pit_mine", "solar_farm",
    # settlements
    "dense_urban_grid", "informal_settlement", "suburban", "village",
    # water
    "reservoir_dam", "meandering_river", "braided_river", "aquaculture_ponds", "salt_pans",
    # forest
    "clear_cuts", "shifting_cultivation",
)
S = {name: i for i, name in enumerate(STRUCTURES)}
#: Settlement morphologies (the ``settlement`` task regresses their buildings per km^2).
SETTLEMENTS: tuple[str, ...] = ("dense_urban_grid", "informal_settlement", "suburban", "village")
#: Classes drawn from the same materials (same spectral distributions) that differ in geometry (for some, also in
#: the area share of each material; see docs/simearth.md).
ARRANGEMENT_GROUPS: dict[str, tuple[str, ...]] = {
    "crop fields": ("centre_pivot", "field_mosaic_large", "field_mosaic_small", "terraces"),
    "tree crops": ("orchard", "plantation"),
    "forest clearings": ("clear_cuts", "shifting_cultivation"),
    "pavement on grass": ("airport", "highway", "road_interchange"),
    "settlements": SETTLEMENTS,
    "rivers": ("meandering_river", "braided_river"),
    "rectangular ponds": ("aquaculture_ponds", "salt_pans"),
}
#: Pixel area at 10 m, in km^2.
PIXEL_KM2 = 1e-4


@dataclass(frozen=True)
class Site:
    """What the prevalence of structures depends on, besides the window's land cover."""

    climate: str | None = None
    continent: str | None = None
    coastal: bool = False


# ------------------------------------------------------------------------------------------ geometry helpers
@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _frame(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float],
           theta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u along, v across) centred on ``centre``, rotated by a random angle (or ``theta``)."""
    yy, xx = _grid(*shape)
    th = rng.uniform(0, np.pi) if theta is None else theta
    c, s = np.float32(np.cos(th)), np.float32(np.sin(th))
    dy, dx = yy - np.float32(centre[0]), xx - np.float32(centre[1])
    return dx * c + dy * s, dy * c - dx * s


def _footprint(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float],
               radius: float) -> np.ndarray:
    """A blob of about ``radius`` px around ``centre`` with a rough edge (a 6 px field perturbs the distance)."""
    yy, xx = _grid(*shape)
    d = np.hypot(yy - np.float32(centre[0]), xx - np.float32(centre[1])) / np.float32(radius)
    d += np.float32(0.15) * smooth_field(rng, shape, 6.0)[0]
    return d < 1.0


#: Radius of an area structure's footprint, as a share of the patch side: the same wide range for every class, so
#: that the share of the patch a structure covers (and hence its share in per-band statistics) says little about
#: which structure it is (at 96 px: r 24-77 px, 240-770 m).
EXTENT = (0.25, 0.8)


def _extent(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """The footprint of an area structure: a rough blob of radius ``EXTENT`` x the patch side."""
    return _footprint(rng, shape, centre, max(shape) * rng.uniform(*EXTENT))


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


def _paved(site: Site) -> float:
    """Share of paved local streets: 35 % of roads are paved worldwide, mostly in North America and Europe;
    unpaved roads dominate in South America and Africa (Rodrigue, The Geography of Transport Systems)."""
    return {"North America": 0.9, "Europe": 0.9, "Oceania": 0.6, "Asia": 0.5, "South America": 0.25,
            "Africa": 0.2}.get(site.continent or "", 0.35)


def _street_material(rng: np.random.Generator, site: Site) -> int:
    return M["pavement"] if rng.random() < _paved(site) else M["bare_soil"]


def _line_distance(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to a polyline sampled densely at (ys, xs) (points off the patch ignored)."""
    h, w = shape
    r = np.round(ys).astype(np.int64)
    c = np.round(xs).astype(np.int64)
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    seed = np.ones(shape, bool)
    seed[r[ok], c[ok]] = False
    if seed.all():
        return np.full(shape, np.inf, np.float32)
    return ndimage.distance_transform_edt(seed).astype(np.float32)


def _meander_line(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float],
                  wavelength: float, amplitude: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """A sine-generated centreline through ``centre`` (direction ``theta``), sampled every 0.25 px."""
    h, w = shape
    t = np.arange(-1.5 * max(h, w), 1.5 * max(h, w), 0.25, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    off = amplitude * (np.sin(2 * np.pi * t / wavelength + phase) - np.sin(phase))
    # Sine-generated curves (Langbein & Leopold 1966): the direction oscillates, so loops can tighten.
    ang = theta + off / max(amplitude, 1e-3) * min(1.2, amplitude / wavelength * 2 * np.pi)
    dx = np.cos(ang) * 0.25
    dy = np.sin(ang) * 0.25
    i0 = len(t) // 2
    xs = np.cumsum(dx) - np.cumsum(dx)[i0] + centre[1]
    ys = np.cumsum(dy) - np.cumsum(dy)[i0] + centre[0]
    return ys, xs


def _rect_grid(u: np.ndarray, v: np.ndarray, rng: np.random.Generator, width: tuple[float, float],
               length: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Rectangular cells in the (u, v) frame: cell ids (compact) and a one-pixel boundary mask (dikes, tracks)."""
    cw, cl = rng.uniform(*width), rng.uniform(*length)
    iu = np.floor(u / cl + rng.random()).astype(np.int64)
    iv = np.floor(v / cw + rng.random()).astype(np.int64)
    key = (iu - iu.min()) * 4096 + (iv - iv.min())
    uniq, inv = _compact(key.ravel())
    ids = inv.reshape(u.shape)
    edge = np.zeros(u.shape, bool)
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return ids, edge


def _trees(b: _Builder, mask: np.ndarray, ctx: Context, ids: np.ndarray | None = None) -> None:
    tl, tm = _tree_type(ctx)
    b.put(mask, tl, tm, ids)


def _forest_type(ctx: Context) -> tuple[int, int]:
    """Forest label/material of managed forests: needleleaf in cold climates, else the climate's tree type."""
    if ctx.cold:
        return C["needleleaf_evergreen"], M["needleleaf_evergreen"]
    return _tree_type(ctx)


# ----------------------------------------------------------------------------------------------- farming
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


# ---------------------------------------------------------------------------------------- infrastructure
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


# ------------------------------------------------------------------------------------------- settlements
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


# ------------------------------------------------------------------------------------------------ water
def _riparian(b: _Builder, ctx: Context, bank: np.ndarray) -> None:
    if ctx.wetness > 0.3:
        _trees(b, bank & (ctx.rng.random(ctx.shape) < 0.7), ctx)
    else:
        b.put(bank, C["shrubland"], M["shrub"])


def reservoir_dam(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A dam crest 2-3 px wide (concrete) across a valley 30-70 px wide at ``centre``; upstream the reservoir
    widens and follows a dendritic shoreline (a 6 px field); a 1 px drawdown ring of bare soil; downstream a
    river 1-3 px wide."""
    rng, shape = ctx.rng, ctx.shape
    u, v = _frame(rng, shape, centre)
    half = rng.uniform(15, 35)
    rough = 6.0 * smooth_field(rng, shape, 6.0)[0]
    water = (u < 0) & (np.abs(v) + rough < half + 0.6 * (-u))
    ring = ndimage.binary_dilation(water) & ~water & (u < 0)
    b.put(ring, C["barren"], M["bare_soil"])
    b.put(water, C["water"], M["water"])
    river = (u > 0) & (np.abs(v - 2.0 * smooth_field(rng, shape, 8.0)[0]) < rng.uniform(0.5, 1.5))
    b.put(river, C["water"], M["water"])
    crest = rng.uniform(1.0, 1.5)
    b.put((np.abs(u) < crest) & (np.abs(v) < half + 2), C["road"], M["pavement"])


def meandering_river(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """One sinuous channel 2-5 px wide (sine-generated curve, wavelength 10-14 x width... 25-60 px, amplitude
    0.3-0.6 wavelength) through ``centre``; sand point bars (1-3 px) where a 3 px field is high on the banks;
    an oxbow lake beside it in half the scenes; bank trees (shrubs where dry)."""
    rng, shape = ctx.rng, ctx.shape
    width = rng.uniform(2.0, 5.0)
    wavelength = rng.uniform(25, 60)
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = _meander_line(rng, shape, centre, wavelength, wavelength * rng.uniform(0.3, 0.6), theta)
    d = _line_distance(shape, ys, xs)
    channel = d < width / 2
    bank = (d < width / 2 + rng.uniform(2, 4)) & ~channel
    bar = bank & (d < width / 2 + 3) & (smooth_field(rng, shape, 3.0)[0] > 0.4)
    _riparian(b, ctx, bank & ~bar)
    b.put(bar, C["barren"], M["sand"])
    if rng.random() < 0.5:
        oy, ox = _meander_line(rng, shape, (centre[0] + rng.uniform(-25, 25), centre[1] + rng.uniform(-25, 25)),
                               wavelength * 0.5, wavelength * 0.2, theta + rng.uniform(-0.5, 0.5))
        keep = np.abs(np.arange(len(oy)) - len(oy) // 2) < rng.uniform(40, 90)
        od = _line_distance(shape, oy[keep], ox[keep])
        b.put((od < width / 2) & (d > width / 2 + 3), C["water"], M["water"])
    b.put(channel, C["water"], M["water"])


def braided_river(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A channel belt 20-45 px wide along a gently sinuous line through ``centre``; inside it, threads of water
    where an anisotropic field (stretched 4x along the flow, 2 px scale) is near zero, i.e. channels that split
    and rejoin around bars of sand and gravel, some bars vegetated (grass / shrub) where a coarse field is high;
    bank trees (shrubs where dry)."""
    rng, shape = ctx.rng, ctx.shape
    belt = rng.uniform(20, 45)
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = _meander_line(rng, shape, centre, rng.uniform(80, 160), rng.uniform(3, 10), theta)
    d = _line_distance(shape, ys, xs)
    inside = d < belt / 2
    u, v = _frame(rng, shape, centre, theta)
    f = smooth_field(rng, (64, 64), 2.0)[0]
    fi = f[np.floor(v + 1000).astype(np.int64) % 64, np.floor(u / 4 + 1000).astype(np.int64) % 64]
    threads = inside & (np.abs(fi) < rng.uniform(0.25, 0.45))
    threads[d < 1.0] = True
    bars = inside & ~threads
    veg = bars & (smooth_field(rng, shape, 6.0)[0] > 0.7)
    bank = (d < belt / 2 + rng.uniform(2, 4)) & ~inside
    _riparian(b, ctx, bank)
    b.put(bars & ~veg, C["barren"], np.where(rng.random(shape) < 0.6, M["sand"], M["rock"]).astype(np.uint8))
    b.put(veg, C["grassland"], M["grass"])
    b.put(threads, C["water"], M["water"])


def _ponds(b: _Builder, ctx: Context, centre: tuple[float, float], width: tuple[float, float],
           length: tuple[float, float], pond_material: Callable[[np.ndarray, int], np.ndarray]) -> None:
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    ids, edge = _rect_grid(u, v, rng, width, length)
    n = int(ids.max()) + 1
    mats = pond_material(u, n)
    lab = np.where(mats == M["water"], C["water"], C["barren"]).astype(np.uint8)
    b.put(foot & ~edge, lab[ids], mats[ids], ids)
    b.put(foot & edge, C["barren"], M["bare_soil"])


def aquaculture_ponds(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Rectangular ponds 5-15 x 8-25 px (0.4-3.8 ha; brackish ponds in Indonesia mostly > 2 ha, Cholik 1988)
    separated by 1 px earth dikes; each pond its own water (turbidity); 10 % drained (bare soil)."""
    rng = ctx.rng

    def mats(u: np.ndarray, n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.1, M["bare_soil"], M["water"]).astype(np.uint8)

    _ponds(b, ctx, centre, (5, 15), (8, 25), mats)


def salt_pans(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Evaporation ponds and crystallisers 10-30 x 15-40 px (1.5-12 ha; Port Hedland's 30 crystallisers average
    37 ha, Rio Tinto) separated by 1 px earth dikes; 30 % intake ponds of water, the rest brine to salt crust."""
    rng = ctx.rng

    def mats(u: np.ndarray, n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.3, M["water"], M["salt"]).astype(np.uint8)

    _ponds(b, ctx, centre, (10, 30), (15, 40), mats)


# ----------------------------------------------------------------------------------------------- forest
def _clearing_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cleared ground, the same distribution in clear-cuts and shifting cultivation: bare soil, regrowing grass,
    shrub, or char (burnt)."""
    return np.array([M["bare_soil"], M["grass"], M["shrub"], M["char"]], np.uint8)[
        rng.choice(4, n, p=[0.35, 0.3, 0.25, 0.1])]


_CLEAR_LABEL = np.zeros(256, np.uint8)
_CLEAR_LABEL[[M["bare_soil"], M["char"]]] = C["barren"]
_CLEAR_LABEL[M["grass"]] = C["grassland"]
_CLEAR_LABEL[M["shrub"]] = C["shrubland"]


def _forest(b: _Builder, ctx: Context, foot: np.ndarray) -> None:
    fl, fm = _forest_type(ctx)
    stands = np.digitize(smooth_field(ctx.rng, ctx.shape, 8.0)[0], [-0.5, 0.5])
    b.put(foot, fl, fm, stands)


def clear_cuts(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Managed forest with 2-5 rectangular cut blocks, one on ``centre``: sides 11-18 px (1.3-3.1 ha, Finland)
    in Europe, 35-60 px (mean 27.8 ha, British Columbia) in North America, either elsewhere; straight edges;
    each block one clearing state."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    _forest(b, ctx, foot)
    big = site.continent == "North America" or (site.continent != "Europe" and rng.random() < 0.5)
    lo, hi = (35, 60) if big else (11, 18)
    n = int(rng.integers(2, 6))
    states = _clearing_states(rng, n)
    theta = rng.uniform(0, np.pi)
    for k in range(n):
        c = centre if k == 0 else (centre[0] + rng.uniform(-40, 40), centre[1] + rng.uniform(-40, 40))
        u, v = _frame(rng, shape, c, theta + rng.normal(0, 0.1))
        block = foot & (np.abs(u) < rng.uniform(lo, hi) / 2) & (np.abs(v) < rng.uniform(lo, hi) / 2)
        b.put(block, int(_CLEAR_LABEL[states[k]]), int(states[k]))


def shifting_cultivation(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Forest with many small irregular clearings (rounded blobs of 3-8 px, 0.1-0.5 ha) covering 25-45 % of the
    area in various stages (DRC rural complex: clearings, fields and fallow ~40 %, Molinario et al.), one on
    ``centre``; same clearing states as clear-cuts."""
    rng, shape = ctx.rng, ctx.shape
    foot = _extent(rng, shape, centre)
    _forest(b, ctx, foot)
    f = smooth_field(rng, shape, rng.uniform(1.5, 3.0))[0]
    clear = foot & _quantile_mask(f, rng.uniform(0.25, 0.45), foot)
    yy, xx = _grid(*shape)
    clear |= np.hypot(yy - np.float32(centre[0]), xx - np.float32(centre[1])) < rng.uniform(2.0, 4.0)
    ids, n = ndimage.label(clear)
    states = _clearing_states(rng, n + 1)
    b.put(clear, _CLEAR_LABEL[states[ids]], states[ids], ids)


#: Generator of each structure.
GENERATORS: dict[str, Callable[[_Builder, Context, Site, tuple[float, float]], None]] = {
    name: globals()[name] for name in STRUCTURES
}


# ------------------------------------------------------------------------------------------- prevalence
#: Continent factors (documented with their sources in docs/simearth.md); missing continents take ``default``.
_LARGE_FIELDS = {"North America": 0.9, "Oceania": 0.9, "Europe": 0.6, "South America": 0.6, "Asia": 0.3,
                 "Africa": 0.2, "default": 0.5}
_TERRACES = {"Asia": 0.15, "Africa": 0.03, "South America": 0.03, "default": 0.01}
_GREENHOUSES = {"Asia": 0.004, "default": 0.0005}
_PLANTATIONS = {"Asia": 0.3, "Africa": 0.05, "South America": 0.05, "default": 0.0}
_PAVED_ROADS = {"North America": 2.0, "Europe": 2.0, "default": 0.5}
_MINES = {"Oceania": 3.0, "Asia": 1.5, "North America": 1.5, "South America": 1.5, "Europe": 0.7, "default": 1.0}
_SOLAR = {"Asia": 2.0, "Europe": 2.0, "North America": 1.0, "default": 0.3}
_GRID = {"North America": 0.5, "Oceania": 0.3, "South America": 0.3, "default": 0.2}
_INFORMAL = {"Africa": 0.5, "Asia": 0.3, "South America": 0.3, "default": 0.02}
_SUBURBAN = {"North America": 0.5, "Oceania": 0.6, "Europe": 0.35, "default": 0.15}
_VILLAGES = {"Africa": 1.0, "Asia": 1.0, "Europe": 0.6, "South America": 0.4, "North America": 0.2, "default": 0.1}
_AQUACULTURE = {"Asia": 0.08, "South America": 0.02, "default": 0.003}
_FORESTRY = {"Europe": 1.0, "North America": 1.0, "Oceania": 0.5, "default": 0.2}
_SHIFTING = {"Africa": 1.0, "South America": 0.5, "Asia": 0.5, "default": 0.05}
#: Share of rivers that are braided (multi-threaded) by main climate (Nyberg et al. 2023: 52 % of channel belts
#: by area are multi-threaded globally; the shift towards cold and arid climates is a documented default).
_BRAIDED = {"E": 0.8, "D": 0.6, "B": 0.6, "C": 0.45, "A": 0.35, "default": 0.5}


def _of(table: dict[str, float], key: str) -> float:
    return table.get(key, table["default"])


def _prevalence_one(f: list[float], climate: str, continent: str, coastal: bool) -> list[float]:
    main = climate[:1]
    arid = 1.0 if main == "B" else 0.0
    tropical = 1.0 if main == "A" else 0.0
    medit = 1.0 if climate[:2] == "Cs" else 0.0
    coast = 1.0 if coastal else 0.0
    crop = f[12] + 0.5 * f[14]
    urban, forest, water, wetland = f[13], f[1] + f[2] + f[3] + f[4] + f[5], f[0], f[11]
    grass, shrub, sav, bare = f[10], f[6] + f[7], f[8] + f[9], f[16]
    w = dict.fromkeys(STRUCTURES, 0.0)
    fields = 2.0 * crop
    pivot = 0.3 if arid else 0.1 if (tropical and continent == "South America") else 0.03
    terr = _of(_TERRACES, continent) + 0.04 * medit
    green = _of(_GREENHOUSES, continent) + 0.01 * medit
    orch = 0.02 + 0.08 * medit
    w["centre_pivot"] = (fields + 0.2 * bare + 0.2 * grass) * pivot
    w["terraces"] = fields * terr
    w["greenhouses"] = fields * green
    w["orchard"] = fields * orch
    w["plantation"] = (crop + 0.1 * forest + 0.2 * sav) * tropical * _of(_PLANTATIONS, continent)
    rest = fields * max(0.0, 1.0 - pivot - terr - green - orch)
    large = _of(_LARGE_FIELDS, continent)
    w["field_mosaic_large"] = rest * large
    w["field_mosaic_small"] = rest * (1 - large)
    paved = _of(_PAVED_ROADS, continent)
    w["airport"] = 3e-4 + 0.01 * urban
    w["highway"] = 0.02 * paved * (0.3 + crop + 2 * urban)
    w["road_interchange"] = 0.004 * paved * (5 * urban + 0.3 * crop)
    w["port"] = coast * (0.05 * urban + 0.002)
    w["open_pit_mine"] = 1.5e-3 * (0.3 + bare + shrub + grass) * _of(_MINES, continent)
    w["solar_farm"] = 5e-4 * (crop + 0.5 * (bare + grass + urban)) * _of(_SOLAR, continent)
    towns = 3.0 * urban
    w["dense_urban_grid"] = towns * _of(_GRID, continent)
    w["informal_settlement"] = towns * _of(_INFORMAL, continent)
    w["suburban"] = towns * _of(_SUBURBAN, continent)
    w["village"] = 0.4 * (crop + 0.3 * grass + 0.3 * sav) * _of(_VILLAGES, continent)
    rivers = 0.25 * climate_vigour(climate or None)[1] * (1 + 3 * (water + wetland))
    braided = _of(_BRAIDED, main)
    w["meandering_river"] = rivers * (1 - braided)
    w["braided_river"] = rivers * braided
    w["reservoir_dam"] = 0.003 * (1 + 5 * water) * (1 - 0.7 * coast)
    w["aquaculture_ponds"] = coast * (crop + wetland + water + 0.1) * _of(_AQUACULTURE, continent)
    w["salt_pans"] = coast * (0.02 * arid + 0.002)
    w["clear_cuts"] = forest * 0.08 * _of(_FORESTRY, continent)
    w["shifting_cultivation"] = (forest + 0.5 * sav) * 0.08 * (0.1 + 0.9 * tropical) * _of(_SHIFTING, continent)
    # Land only, and not on ice: none in a window without land (open water), fewer as snow and ice cover it.
    ice_free = max(0.0, 1.0 - f[15]) if sum(f[1:]) > 0 else 0.0
    return [w[name] * ice_free for name in STRUCTURES]


def prevalence_at(fractions: np.ndarray, climate: str | None, continent: str | None, coastal: bool) -> np.ndarray:
    """``prevalence`` of one location (a (len(STRUCTURES),) array), without the batch bookkeeping."""
    return np.array(_prevalence_one(np.asarray(fractions, np.float64).tolist(), climate or "", continent or "",
                                    bool(coastal)))


def prevalence(fractions: Any, climate: Any, continent: Any, coastal: Any) -> np.ndarray:
    """Expected number of each structure in a ~1 km^2 scene, (n, len(STRUCTURES)), for n locations.

    ``fractions`` (n, 17) IGBP fractions of the window; ``climate`` Koppen codes; ``continent`` names (None at
    sea); ``coastal`` whether the cell lies within ~10 km of the ocean. Every factor and its source is listed in
    docs/simearth.md ("Structures: where and how often"). Plain floats per location: one scene costs ~20 us.
    """
    f = np.atleast_2d(np.asarray(fractions, np.float64)).tolist()
    n = len(f)
    clim = np.broadcast_to(np.asarray(climate, object), (n,))
    cont = np.broadcast_to(np.asarray(continent, object), (n,))
    coast = np.broadcast_to(np.asarray(coastal, bool), (n,))
    return np.array([_prevalence_one(f[i], str(clim[i] or ""), str(cont[i] or ""), bool(coast[i]))
                     for i in range(n)], np.float64).reshape(n, len(STRUCTURES))


def structure_probability(weights: np.ndarray) -> np.ndarray:
    """Probability that a scene holds a structure: 1 - exp(-expected count) (a Poisson scene)."""
    return 1.0 - np.exp(-np.asarray(weights).sum(axis=-1))


def draw_structure(rng: np.random.Generator, weights: np.ndarray) -> int | None:
    """The structure of one scene (index into STRUCTURES), or None: present with ``structure_probability``, of a
    kind in proportion to ``weights``."""
    cum = np.cumsum(weights)
    total = float(cum[-1])
    if total <= 0 or rng.random() >= 1.0 - np.exp(-total):
        return None
    return int(min(np.searchsorted(cum, rng.random() * total, side="right"), len(weights) - 1))


def paint(name: str, b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Paint structure ``name`` centred on pixel ``centre`` (row, col) into the builder."""
    GENERATORS[name](b, ctx, site, centre)
