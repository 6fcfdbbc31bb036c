"""Water structures: reservoirs with dams, meandering and braided rivers, aquaculture ponds and salt pans."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from geodiv.simearth.layout import C, Context, M, _Builder
from geodiv.simearth.random_fields import smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import (
    _extent,
    _frame,
    _line_distance,
    _meander_line,
    _rect_grid,
    _trees,
)


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
