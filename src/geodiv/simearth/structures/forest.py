"""Forest structures: clear-cuts and shifting cultivation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geodiv.simearth.layout import C, Context, M, _Builder, _tree_type
from geodiv.simearth.random_fields import _quantile_mask, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _extent, _frame, _grid


def _forest_type(ctx: Context) -> tuple[int, int]:
    """Forest label/material of managed forests: needleleaf in cold climates, else the climate's tree type."""
    if ctx.cold:
        return C["needleleaf_evergreen"], M["needleleaf_evergreen"]
    return _tree_type(ctx)


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
