"""Simulated Sentinel-2 L2A patches: geography lookup -> landscape layout -> spectra -> sensor.

``render_patch`` takes the land-cover fractions and climate explicitly; ``simulate_patch`` looks them up for a
location with ``geodiv.geo``. Every random choice comes from one Generator seeded by (seed, lat, lon).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

from geodiv.bands import S2_BANDS, S2_GSD_M
from geodiv.config import StrictModel
from geodiv.errors import InputError
from geodiv.geo import annotate, landcover_fractions
from geodiv.geo._grid import flat_cell
from geodiv.geo.regions import coastal_mask
from geodiv.simearth import spectra, structures
from geodiv.simearth.layout import (
    BUILT_CODES,
    FOREST_CODES,
    IGBP_NAMES,
    SIM_CLASSES,
    C,
    Context,
    M,
    build_layout,
    patch_composition,
)
from geodiv.simearth.random_fields import linear_quantile_inplace, smooth_field

_BANDS_10M = [i for i, b in enumerate(S2_BANDS) if S2_GSD_M[b] == 10]
_BANDS_20M = [i for i, b in enumerate(S2_BANDS) if S2_GSD_M[b] == 20]
_BANDS_60M = [i for i, b in enumerate(S2_BANDS) if S2_GSD_M[b] == 60]
#: Sensor noise std per band (reflectance), of the order of Sentinel-2 MSI's radiometric noise at typical
#: radiance (SNR 100-200; ESA Sentinel-2 User Handbook): a little more in the 10 m bands.
_NOISE = np.array([0.0015 if S2_GSD_M[b] == 60 else 0.002 if S2_GSD_M[b] == 20 else 0.0025 for b in S2_BANDS],
                  np.float32)
_NOISE[S2_BANDS.index("B10")] = 0.0003
MAX_SIZE = 1024


class SimConfig(StrictModel):
    """Knobs of the simulator (defaults are what the study uses)."""

    #: window of 0.05-degree land-cover cells whose class fractions the patch is drawn around
    window: int = 5
    #: Dirichlet concentration of the patch composition around the window's fractions (higher: closer to them)
    concentration: float = 4.0
    #: probability that a scene carries residual haze (optical depth uniform in 0..0.3)
    haze_probability: float = 0.3
    #: probability that a scene carries clouds (cover uniform in 5..40 %, with shadows)
    cloud_probability: float = 0.0
    #: add sensor noise
    noise: bool = True
    #: Gaussian point-spread function sigma in 10 m pixels (mixes pixels at edges)
    psf_sigma_px: float = 0.5
    allow_ocean: bool = False
    allow_antarctica: bool = False
    #: paint structures (fields, settlements, infrastructure ...) with their location-dependent prevalence
    structures: bool = True


@dataclass
class Patch:
    image: np.ndarray  # uint16 (13, H, W), reflectance x 10000, S2_BANDS order
    classes: np.ndarray  # uint8 (H, W), SIM_CLASSES codes
    meta: dict[str, Any] = field(default_factory=dict)


def patch_rng(seed: int, lat: float, lon: float) -> np.random.Generator:
    """The patch's Generator: a function of (seed, lat, lon) only (micro-degree resolution)."""
    if int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng([int(seed), int(round((lat + 90.0) * 1e6)), int(round((lon + 180.0) * 1e6))])


def _check_size(size: int) -> int:
    if isinstance(size, bool) or int(size) != size or size <= 0:
        raise InputError(f"patch size must be a positive integer number of pixels, got {size!r}")
    if size > MAX_SIZE:
        raise InputError(f"patch size {size} exceeds {MAX_SIZE} px; simulate several smaller patches instead")
    return int(size)


def _check_fractions(fractions: Any) -> np.ndarray:
    if isinstance(fractions, dict):
        f = np.zeros(len(IGBP_NAMES), np.float64)
        for name, value in fractions.items():
            if name not in IGBP_NAMES:
                raise InputError(f"unknown land-cover class {name!r}; expected one of: {', '.join(IGBP_NAMES)}")
            f[IGBP_NAMES.index(name)] = float(value)
    else:
        f = np.asarray(fractions, np.float64).ravel()
        if f.shape != (len(IGBP_NAMES),):
            raise InputError(f"land-cover fractions must have {len(IGBP_NAMES)} IGBP entries, got {f.shape}")
    if not np.isfinite(f).all() or (f < 0).any() or f.sum() <= 0:
        raise InputError("land-cover fractions must be finite, non-negative and not all zero")
    return f / f.sum()


def render_patch(fractions: Any, climate: str | None, lat: float, lon: float, rng: np.random.Generator,
                 size: int = 96, config: SimConfig | None = None, *, continent: str | None = None,
                 coastal: bool = False, structure: str | None = None) -> Patch:
    """Render a patch from explicit IGBP fractions (17-vector or {name: share}) and a Koppen-Geiger code.

    ``continent`` and ``coastal`` feed the prevalence of structures (``structures.prevalence``). ``structure``
    forces that structure, centred on the patch (the ``scene`` task's sampling); by default a structure is drawn
    from the location's prevalence (or none) and placed within a quarter of the side from the centre.
    """
    cfg = config or SimConfig()
    size = _check_size(size)
    f = _check_fractions(fractions)
    if structure is not None and structure not in structures.S:
        raise InputError(f"unknown structure {structure!r}; SimEarth structures are: "
                         f"{', '.join(structures.STRUCTURES)}")
    vigour, wetness = spectra.climate_vigour(climate)
    # Season: the scene's vegetation vigour is the climate's at peak season times a phenology factor U(0.6, 1)
    # (an acquisition date anywhere in the growing season), so that spectra vary by season as well as by region.
    season = float(rng.uniform(0.6, 1.0))
    vigour *= season
    main = (climate or "C")[0]
    shape = (size, size)
    shares = patch_composition(f, rng, cfg.concentration)
    ctx = Context(rng=rng, shape=shape, wetness=wetness, tropical=main == "A",
                  cold=main in "DE" or abs(lat) > 55, igbp_fractions=f)
    site = structures.Site(climate=climate, continent=continent, coastal=bool(coastal))
    kind, centre = structure, ((size - 1) / 2, (size - 1) / 2)
    if kind is None and cfg.structures:
        drawn = structures.draw_structure(rng, structures.prevalence_at(f, climate, continent, coastal))
        kind = None if drawn is None else structures.STRUCTURES[drawn]
        centre = tuple(float(c) for c in (np.asarray(centre) + rng.uniform(-size / 4, size / 4, 2)))
    extra = None if kind is None else (lambda b: structures.paint(kind, b, ctx, site, centre))
    layout = build_layout(shares, ctx, extra)
    sctx = spectra.SpectralContext(rng=rng, vigour=vigour, wetness=wetness,
                                   soil_pool=spectra.soil_pool(lat, lon))
    obj = spectra.object_spectra(layout.object_material, sctx)  # (n_obj, 13)

    # Within-object texture: white + fine correlated brightness variation, scaled per material.
    tex = smooth_field(rng, shape, 1.2)[0]
    tex *= 0.7
    white = rng.standard_normal(shape, dtype=np.float32)
    white *= 0.7
    tex += white
    gain = spectra.TEXTURE[layout.materials]
    gain *= tex
    gain += 1.0
    img = np.take(obj.T, layout.objects, axis=1)  # (13, H, W)
    img *= gain

    # Sensor: point-spread function (mixed pixels at edges), then 20 m / 60 m bands at their native resolution.
    # (The PSF is applied to the 10 m bands; in the coarser bands the block averaging dominates the mixing.)
    if cfg.psf_sigma_px > 0:
        img[_BANDS_10M] = _psf(img[_BANDS_10M], cfg.psf_sigma_px)
    img[_BANDS_20M] = _native_resolution(img[_BANDS_20M], 2)
    img[_BANDS_60M] = _native_resolution(img[_BANDS_60M], 6)

    haze_tau = float(rng.uniform(0.0, 0.3)) if rng.random() < cfg.haze_probability else 0.0
    if haze_tau > 0:
        spatial = 1.0 + 0.3 * smooth_field(rng, shape, size / 3)[0]
        img += spectra.haze_spectrum(haze_tau)[:, None, None] * spatial[None]
    cloud_fraction = 0.0
    if rng.random() < cfg.cloud_probability:
        img, cloud_fraction = _add_clouds(img, rng, shape)
    # To digital numbers (reflectance x 10000), with sensor noise; +0.5 then truncation rounds to nearest.
    img *= np.float32(10000.0)
    img += _sensor_noise(rng, shape) if cfg.noise else np.float32(0.5)
    image = np.clip(img, 0, 65535, out=img).astype(np.uint16)

    meta = _meta(layout.labels, f, shares, lat, lon, climate)
    n_buildings = count_buildings(layout)
    meta.update(vigour=round(vigour, 3), season=round(season, 3), haze_optical_depth=round(haze_tau, 3), cloud_fraction=cloud_fraction,
                size=size, structure=kind,
                structure_centre=None if kind is None else [round(centre[0], 2), round(centre[1], 2)],
                buildings=n_buildings,
                buildings_per_km2=round(n_buildings / (size * size * structures.PIXEL_KM2), 2))
    return Patch(image=image, classes=layout.labels, meta=meta)


def _white_noise_dn(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(13, h, w) white noise in DN (per-band std ``_NOISE`` x 10000, plus the 0.5 rounding offset)."""
    noise = rng.standard_normal((len(S2_BANDS), h, w), dtype=np.float32)
    return noise * (_NOISE * 10000.0)[:, None, None] + np.float32(0.5)


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """(13, 256, 256) sensor noise drawn once from a fixed seed."""
    return _white_noise_dn(np.random.default_rng(7), 256, 256)


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Sensor noise for one patch: a random crop of the noise bank (fresh noise past the bank's size)."""
    h, w = shape
    if h > 256 or w > 256:
        return _white_noise_dn(rng, h, w)
    r0, c0 = rng.integers(0, 256 - h + 1), rng.integers(0, 256 - w + 1)
    return _noise_bank()[:, r0:r0 + h, c0:c0 + w]


def _psf(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian point-spread function; a 3-tap kernel while sigma <= 0.6 px (cheap), else scipy."""
    if sigma > 0.6:
        return ndimage.gaussian_filter(img, sigma=(0, sigma, sigma), mode="reflect")
    side = float(np.exp(-0.5 / sigma**2))
    w0, w1 = 1.0 / (1.0 + 2.0 * side), side / (1.0 + 2.0 * side)
    out = img * np.float32(w0)
    # Rows, then columns; the edge pixel reflects onto itself.
    out[:, 1:] += np.float32(w1) * img[:, :-1]
    out[:, :-1] += np.float32(w1) * img[:, 1:]
    out[:, 0] += np.float32(w1) * img[:, 0]
    out[:, -1] += np.float32(w1) * img[:, -1]
    res = out * np.float32(w0)
    res[:, :, 1:] += np.float32(w1) * out[:, :, :-1]
    res[:, :, :-1] += np.float32(w1) * out[:, :, 1:]
    res[:, :, 0] += np.float32(w1) * out[:, :, 0]
    res[:, :, -1] += np.float32(w1) * out[:, :, -1]
    return res


def _native_resolution(bands: np.ndarray, factor: int) -> np.ndarray:
    """Bands recorded at ``factor`` x 10 m and delivered on the 10 m grid: block means, repeated (nearest)."""
    c, h, w = bands.shape
    if h % factor or w % factor:
        return ndimage.uniform_filter(bands, size=(1, factor, factor), mode="reflect")
    # Block sums as ``factor`` strided slice additions per axis: the same additions in the same order as
    # ``.sum(axis)`` (so the same bits), but ~3x faster than numpy's reduction over a length-2..6 axis. Then
    # repeat columns on the small array and whole rows on the large one (contiguous copies).
    by_rows = bands.reshape(c, h // factor, factor, w)
    rows = by_rows[:, :, 0] + by_rows[:, :, 1]
    for k in range(2, factor):
        rows += by_rows[:, :, k]
    by_cols = rows.reshape(c, h // factor, w // factor, factor)
    blocks = by_cols[..., 0] + by_cols[..., 1]
    for k in range(2, factor):
        blocks += by_cols[..., k]
    blocks *= np.float32(1.0 / factor**2)
    return np.repeat(np.repeat(blocks, factor, axis=2), factor, axis=1)


def _add_clouds(img: np.ndarray, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    cover = rng.uniform(0.05, 0.4)
    f = smooth_field(rng, shape, max(shape) / 8)[0]
    # The in-place quantile: np.quantile's value on numpy >= 2.4, the same on any numpy (and faster).
    thr = linear_quantile_inplace(f.ravel().copy(), 1 - cover)
    alpha = np.clip((f - thr) / 0.6, 0.0, 1.0)  # optically thin at the edges, thick inside
    shift = rng.integers(3, max(4, shape[0] // 8), 2)
    shadow = np.roll(alpha, tuple(int(s) for s in shift), axis=(0, 1))
    img = img * (1.0 - 0.6 * shadow)[None]
    img = (1.0 - alpha)[None] * img + alpha[None] * spectra.CLOUD.astype(np.float32)[:, None, None]
    return img.astype(np.float32), round(float((alpha > 0.5).mean()), 4)


def count_buildings(layout: Any) -> int:
    """Number of buildings in a layout: distinct objects labelled built-up with a roof material."""
    mask = (layout.labels == C["built_up"]) & (layout.materials == M["roof"])
    if not mask.any():
        return 0
    return int(np.count_nonzero(np.bincount(layout.objects[mask])))


def class_fractions(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=len(SIM_CLASSES)) / labels.size


def _meta(labels: np.ndarray, window: np.ndarray, shares: np.ndarray, lat: float, lon: float,
          climate: str | None) -> dict[str, Any]:
    frac = class_fractions(labels)
    return {
        "lat": float(lat), "lon": float(lon), "continent": None, "biome": None, "climate": climate,
        "landcover": IGBP_NAMES[int(np.argmax(shares))],
        "landcover_fractions": {IGBP_NAMES[i]: round(float(v), 4) for i, v in enumerate(window) if v > 0},
        "patch_composition": {IGBP_NAMES[i]: round(float(v), 4) for i, v in enumerate(shares) if v > 0},
        "tree_cover": round(float(frac[list(FOREST_CODES)].sum()), 4),
        "built_up": round(float(frac[list(BUILT_CODES)].sum()), 4),
        "water_fraction": round(float(frac[0]), 4),
        "forest_type_fractions": {SIM_CLASSES[c]: round(float(frac[c]), 4) for c in FOREST_CODES},
        "class_fractions": {SIM_CLASSES[c]: round(float(v), 4) for c, v in enumerate(frac) if v > 0},
    }


# ---------------------------------------------------------------------------------------- geography
def lookup(lat: np.ndarray, lon: np.ndarray, config: SimConfig | None = None) -> dict[str, np.ndarray]:
    """Vectorised geography of many locations: IGBP window fractions, climate, continent, biome.

    Raises ``InputError`` for open ocean (no land in the window and no continent) or Antarctica unless allowed.
    """
    cfg = config or SimConfig()
    lat = np.atleast_1d(np.asarray(lat, np.float64))
    lon = np.atleast_1d(np.asarray(lon, np.float64))
    if lat.shape != lon.shape or not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise InputError("lat and lon must be finite arrays of the same shape")
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
        raise InputError("latitude must be within [-90, 90] and longitude within [-180, 180] degrees")
    fractions = np.asarray(landcover_fractions(lat, lon, window=cfg.window), np.float64)
    where = annotate(lat, lon)  # continent, climate and biome from one shared lookup
    continent = where["continent"]
    no = np.zeros(lat.shape, bool)
    antarctic = no if cfg.allow_antarctica else (continent == "Antarctica") | (lat < -60)
    ocean = no if cfg.allow_ocean else (fractions[:, 1:].sum(axis=1) <= 1e-6) & (continent == None)  # noqa: E711
    refused = antarctic | ocean
    if refused.any():
        i = int(np.argmax(refused))  # the first refused location, Antarctica checked before ocean
        if antarctic[i]:
            raise InputError(f"location ({lat[i]:.4f}, {lon[i]:.4f}) is in Antarctica; SimEarth excludes it "
                             "unless SimConfig(allow_antarctica=True)")
        raise InputError(f"location ({lat[i]:.4f}, {lon[i]:.4f}) is open ocean (no land within the "
                         f"{cfg.window} x {cfg.window} cell window); choose a land location or "
                         "SimConfig(allow_ocean=True)")
    coastal = coastal_mask().ravel()[flat_cell(lat, lon)]
    return {"fractions": fractions, "continent": continent, "climate": where["climate"], "biome": where["biome"],
            "coastal": coastal}


def simulate_patch(lat: float, lon: float, seed: int, size: int = 96, config: SimConfig | None = None,
                   structure: str | None = None) -> Patch:
    """One simulated Sentinel-2 L2A patch at (lat, lon); deterministic for (seed, lat, lon, size, config,
    structure). ``structure`` forces that structure at the patch centre (see ``render_patch``)."""
    return next(simulate_patches([lat], [lon], seed, size=size, config=config,
                                 structure_names=None if structure is None else [structure]))


def simulate_patches(lat: Any, lon: Any, seed: int, size: int = 96,
                     config: SimConfig | None = None, structure_names: Any = None) -> Iterator[Patch]:
    """Patches for many locations: one vectorised geography lookup, then one patch per location.

    Patch i equals ``simulate_patch(lat[i], lon[i], seed, size, config, structure_names[i])``.
    """
    cfg = config or SimConfig()
    size = _check_size(size)
    geo = lookup(lat, lon, cfg)
    lat = np.atleast_1d(np.asarray(lat, np.float64))
    lon = np.atleast_1d(np.asarray(lon, np.float64))
    for i in range(len(lat)):
        climate = geo["climate"][i]
        climate = None if climate is None else str(climate)
        fractions = geo["fractions"][i]
        if fractions.sum() <= 0:  # a coastal point whose window holds only water cells
            fractions = np.eye(len(IGBP_NAMES))[0]
        patch = render_patch(fractions, climate, float(lat[i]), float(lon[i]), patch_rng(seed, lat[i], lon[i]),
                             size=size, config=cfg, continent=geo["continent"][i], coastal=bool(geo["coastal"][i]),
                             structure=None if structure_names is None else structure_names[i])
        patch.meta["continent"] = geo["continent"][i]
        biome = geo["biome"][i]
        patch.meta["biome"] = None if biome is None else str(biome)
        patch.meta["seed"] = int(seed)
        yield patch
