"""Forest structures: clear-cuts and shifting cultivation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geodiv.simearth.layout import C, Context, M, _Builder, _tree_type
from geodiv.simearth.random_fields import _quantile_mask, smooth_field
from geodiv.simearth.structures.catalogue import Site
from geodiv.simearth.structures.geometry import _extent, _grid
from geodiv.simearth.structures.shares import CLEARING_STATES, cleared_share, states_by_area


def _forest_type(ctx: Context) -> tuple[int, int]:
    """Forest label/material of managed forests: needleleaf in cold climates, else the climate's tree type."""
    if ctx.cold:
        return C["needleleaf_evergreen"], M["needleleaf_evergreen"]
    return _tree_type(ctx)


def _clearing_states(rng: np.random.Generator, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cleared ground of the clearings ``ids`` inside ``mask``, the same distribution by area in clear-cuts and
    shifting cultivation (``shares.CLEARING_STATES``): bare soil, regrowing grass, shrub, or char (burnt)."""
    return np.array([M["bare_soil"], M["grass"], M["shrub"], M["char"]], np.uint8)[
        states_by_area(rng, ids, mask, CLEARING_STATES)]


_CLEAR_LABEL = np.zeros(256, np.uint8)
_CLEAR_LABEL[[M["bare_soil"], M["char"]]] = C["barren"]
_CLEAR_LABEL[M["grass"]] = C["grassland"]
_CLEAR_LABEL[M["shrub"]] = C["shrubland"]


def _forest(b: _Builder, ctx: Context, foot: np.ndarray) -> None:
    fl, fm = _forest_type(ctx)
    stands = np.digitize(smooth_field(ctx.rng, ctx.shape, 8.0)[0], [-0.5, 0.5])
    b.put(foot, fl, fm, stands)


def clear_cuts(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Managed forest with rectangular cut blocks, one on ``centre``, the others (at most 40) scattered within
    40 px of it until the cleared share of the footprint reaches the scene's draw (``shares.cleared_share``):
    sides 11-18 px (1.3-3.1 ha, Finland) in Europe, 35-60 px (mean 27.8 ha, British Columbia) in North America,
    either elsewhere; straight edges; each block one clearing state (by area)."""
    rng, shape = ctx.rng, ctx.shape
    target = cleared_share(rng)
    foot = _extent(rng, shape, centre)
    _forest(b, ctx, foot)
    big = site.continent == "North America" or (site.continent != "Europe" and rng.random() < 0.5)
    lo, hi = (35, 60) if big else (11, 18)
    theta = rng.uniform(0, np.pi)
    want = target * float(foot.sum())
    yy, xx = _grid(*shape)
    block_id = np.full(shape, -1, np.int64)
    cleared = 0.0
    for k in range(40):
        c = centre if k == 0 else (centre[0] + rng.uniform(-40, 40), centre[1] + rng.uniform(-40, 40))
        th = theta + rng.normal(0, 0.1)
        half_u, half_v = rng.uniform(lo, hi) / 2, rng.uniform(lo, hi) / 2
        # The block's window only (a rotated rectangle lies within hi of its centre).
        r0, r1 = max(int(c[0] - hi), 0), min(int(c[0] + hi) + 2, shape[0])
        c0, c1 = max(int(c[1] - hi), 0), min(int(c[1] + hi) + 2, shape[1])
        if r0 >= r1 or c0 >= c1:
            continue
        dy, dx = yy[r0:r1, c0:c1] - np.float32(c[0]), xx[r0:r1, c0:c1] - np.float32(c[1])
        cs, sn = np.float32(np.cos(th)), np.float32(np.sin(th))
        sub = block_id[r0:r1, c0:c1]
        block = foot[r0:r1, c0:c1] & (sub < 0) & (np.abs(dx * cs + dy * sn) < half_u) & (
            np.abs(dy * cs - dx * sn) < half_v)
        n_new = float(block.sum())
        if k > 0 and cleared + n_new / 2 > want:
            break
        sub[block] = k
        cleared += n_new
    cut = block_id >= 0
    ids = np.where(cut, block_id, 0)
    states = _clearing_states(rng, ids, cut)
    b.put(cut, _CLEAR_LABEL[states[ids]], states[ids], ids)


def shifting_cultivation(b: _Builder, ctx: Context, site: Site, centre: tuple[float, float]) -> None:
    """Forest with many small irregular clearings (rounded blobs of 3-8 px, 0.1-0.5 ha) covering the scene's
    cleared share of the footprint (``shares.cleared_share``; DRC rural complex: clearings, fields and fallow ~40 %,
    Molinario et al.) in various stages, one on ``centre``; same clearing states as clear-cuts (by area)."""
    rng, shape = ctx.rng, ctx.shape
    target = cleared_share(rng)
    foot = _extent(rng, shape, centre)
    _forest(b, ctx, foot)
    f = smooth_field(rng, shape, rng.uniform(1.5, 3.0))[0]
    yy, xx = _grid(*shape)
    clear = foot & _quantile_mask(f, target, foot)
    clear |= np.hypot(yy - np.float32(centre[0]), xx - np.float32(centre[1])) < rng.uniform(2.0, 4.0)
    ids = ndimage.label(clear)[0]
    states = _clearing_states(rng, ids, clear)
    b.put(clear, _CLEAR_LABEL[states[ids]], states[ids], ids)
