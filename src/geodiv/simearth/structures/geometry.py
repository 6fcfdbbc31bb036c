"""Geometry and material helpers shared by the structure generators: coordinate frames, footprints, polylines,
rectangular grids, and the trees of the landscape's climate."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from geodiv.simearth.layout import Context, _Builder, _tree_type
from geodiv.simearth.random_fields import _compact, smooth_field


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
