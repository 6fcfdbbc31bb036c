"""Water structures: reservoirs with dams, meandering and braided rivers, aquaculture ponds and salt pans."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geodiv.simearth.layout import C, Context, M, _Builder
from geodiv.simearth.random_fields import _quantile_mask, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import (
    _extent,
    _frame,
    _line_distance,
    _meander_line,
    _rect_grid,
    _trees,
)
from geodiv.simearth.structures.shares import dry_pond_share, river_shares, states_by_area


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


def _bar_material(rng: np.random.Generator, shape: tuple[int, int], sand: float) -> np.ndarray:
    """Bars of sand and gravel: each pixel sand with probability ``sand``, else rock (gravel)."""
    return np.where(rng.random(shape) < sand, M["sand"], M["rock"]).astype(np.uint8)


def meandering_river(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """One sinuous channel (sine-generated curve, wavelength 25-60 px, amplitude 0.3-0.6 wavelength) through
    ``centre``, as wide as the scene's water share needs with the oxbow lake that half the scenes have beside it
    (``shares.river_shares``; 1.5-10 px, 15-100 m); point bars of sand and gravel, some grassed, up to the scene's
    bar and grass shares where a 3 px field is high next to the channel (within 12 px); bank trees (shrubs where
    dry) 2-4 px beyond."""
    rng, shape = ctx.rng, ctx.shape
    sh = river_shares(rng)
    n_px = float(np.prod(shape))
    wavelength = rng.uniform(25, 60)
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = _meander_line(rng, shape, centre, wavelength, wavelength * rng.uniform(0.3, 0.6), theta)
    d = _line_distance(shape, ys, xs)
    length = float((d < 0.5).sum())
    od = np.full(shape, np.inf, np.float32)
    if rng.random() < 0.5:
        oy, ox = _meander_line(rng, shape, (centre[0] + rng.uniform(-25, 25), centre[1] + rng.uniform(-25, 25)),
                               wavelength * 0.5, wavelength * 0.2, theta + rng.uniform(-0.5, 0.5))
        keep = np.abs(np.arange(len(oy)) - len(oy) // 2) < rng.uniform(40, 90)
        od = _line_distance(shape, oy[keep], ox[keep])
        length += float(((od < 0.5) & (d > 6)).sum())
    width = float(np.clip(sh.water * n_px / max(length, 1.0), 1.5, 10.0))
    channel = d < width / 2
    oxbow = (od < width / 2) & (d > width / 2 + 3)
    wet = channel | oxbow
    near = ~wet & (d < width / 2 + 12)
    score = smooth_field(rng, shape, 3.0)[0] - d / 4.0
    n_near = max(float(near.sum()), 1.0)
    flood = near & _quantile_mask(score, min((sh.bars + sh.grass) * n_px / n_near, 1.0), near)
    veg = flood & _quantile_mask(smooth_field(rng, shape, 6.0)[0], sh.grass / (sh.bars + sh.grass), flood)
    bank = (d < width / 2 + rng.uniform(2, 4)) & ~wet & ~flood
    _riparian(b, ctx, bank)
    b.put(flood & ~veg, C["barren"], _bar_material(rng, shape, sh.sand))
    b.put(veg, C["grassland"], M["grass"])
    b.put(wet, C["water"], M["water"])


def braided_river(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """A channel belt along a gently sinuous line through ``centre``, as wide as the scene's water, bar and grass
    shares need together (``shares.river_shares``; about 8-30 px); inside it, threads of water where an anisotropic
    field (stretched 4x along the flow, 2 px scale) is nearest zero, i.e. channels that split and rejoin around bars
    of sand and gravel, grassed where a coarse field is high; bank trees (shrubs where dry)."""
    rng, shape = ctx.rng, ctx.shape
    sh = river_shares(rng)
    n_px = float(np.prod(shape))
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = _meander_line(rng, shape, centre, rng.uniform(80, 160), rng.uniform(3, 10), theta)
    d = _line_distance(shape, ys, xs)
    belt = float(np.clip((sh.water + sh.bars + sh.grass) * n_px / max(float((d < 0.5).sum()), 1.0), 6.0, 60.0))
    inside = d < belt / 2
    n_in = max(float(inside.sum()), 1.0)
    u, v = _frame(rng, shape, centre, theta)
    f = smooth_field(rng, (64, 64), 2.0)[0]
    fi = f[np.floor(v + 1000).astype(np.int64) % 64, np.floor(u / 4 + 1000).astype(np.int64) % 64]
    threads = inside & _quantile_mask(-np.abs(fi), min(sh.water * n_px / n_in, 1.0), inside)
    threads[d < 1.0] = True
    bars = inside & ~threads
    veg = bars & _quantile_mask(smooth_field(rng, shape, 6.0)[0], sh.grass / (sh.bars + sh.grass), bars)
    bank = (d < belt / 2 + rng.uniform(2, 4)) & ~inside
    _riparian(b, ctx, bank)
    b.put(bars & ~veg, C["barren"], _bar_material(rng, shape, sh.sand))
    b.put(veg, C["grassland"], M["grass"])
    b.put(threads, C["water"], M["water"])


def _ponds(b: _Builder, ctx: Context, centre: tuple[float, float], width: tuple[float, float],
           length: tuple[float, float], surface: tuple[float, float]) -> None:
    """Rectangular ponds separated by 1 px earth dikes over a footprint (``_extent``); ponds are drained (bare
    soil) by area until dikes and drained ponds make the scene's earth share (``shares.dry_pond_share``), the
    others hold water and salt by area in the proportions ``surface``."""
    rng, shape = ctx.rng, ctx.shape
    dry = dry_pond_share(rng)
    foot = _extent(rng, shape, centre)
    u, v = _frame(rng, shape, centre)
    ids, edge = _rect_grid(u, v, rng, width, length)
    dikes, ponds = foot & edge, foot & ~edge
    drained = min(max(dry * float(foot.sum()) - float(dikes.sum()), 0.0) / max(float(ponds.sum()), 1.0), 1.0)
    state = states_by_area(rng, ids, ponds, (drained, *(s * (1 - drained) for s in surface)))
    mats = np.array([M["bare_soil"], M["water"], M["salt"]], np.uint8)[state]
    lab = np.where(mats == M["water"], C["water"], C["barren"]).astype(np.uint8)
    b.put(ponds, lab[ids], mats[ids], ids)
    b.put(dikes, C["barren"], M["bare_soil"])


def aquaculture_ponds(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Rectangular ponds 5-15 x 8-25 px (0.4-3.8 ha; brackish ponds in Indonesia mostly > 2 ha, Cholik 1988)
    separated by 1 px earth dikes; each pond its own water (turbidity); drained ponds (bare soil) up to the scene's
    earth share (``_ponds``)."""
    _ponds(b, ctx, centre, (5, 15), (8, 25), (1.0, 0.0))


def salt_pans(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Evaporation ponds and crystallisers 10-30 x 15-40 px (1.5-12 ha; Port Hedland's 30 crystallisers average
    37 ha, Rio Tinto) separated by 1 px earth dikes; drained ponds up to the scene's earth share (``_ponds``); of
    the pond surface 30 % (by area) intake ponds of water, the rest brine to salt crust."""
    _ponds(b, ctx, centre, (10, 30), (15, 40), (0.3, 0.7))
