"""Spectra: reflectance of every material SimEarth draws, in the 13 Sentinel-2 bands.

Measured spectra come from earthlib (resampled by ``scripts/derive_spectra.py`` into ``_data/spectra.npz``):
PROSAIL canopies (with their LAI), ICRAF-ISRIC soils (with locations), sand, gravel, non-photosynthetic
vegetation, roofs and pavements. Water, snow and cloud use published typical values (constants below, with
sources). Vegetation vigour follows the climate zone (``climate_vigour``). B10 (cirrus, 1373 nm) is near zero, as
in L2A products.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from geodiv.bands import S2_BANDS, S2_CENTER_NM
from geodiv.simearth.layout import MATERIALS, M

N_BANDS = len(S2_BANDS)
_WL = np.array([S2_CENTER_NM[b] for b in S2_BANDS], np.float32)
B10 = S2_BANDS.index("B10")

# Typical reflectance (0-1) at the S2 band centres, B1..B12 (B10 handled separately).
#: Clear, deep inland/coastal water: water-leaving reflectance falls from ~0.05 in the blue to ~0 beyond 900 nm
#: (magnitudes as in Pahlevan et al. 2017, Remote Sens. Environ. 201, "Sentinel-2 MultiSpectral Instrument (MSI)
#: data processing for aquatic science applications", and Mobley 1994, "Light and Water").
WATER_CLEAR = np.array([0.055, 0.050, 0.040, 0.020, 0.012, 0.008, 0.007, 0.006, 0.005, 0.004, 0.0, 0.003, 0.002])
#: Turbid, sediment-laden water: green-red peak near 0.08-0.10 and a NIR tail (Nechad et al. 2010, Remote Sens.
#: Environ. 114, "Generic multisensor algorithm for mapping total suspended matter"; Doxaran et al. 2002).
WATER_TURBID = np.array([0.070, 0.075, 0.095, 0.090, 0.080, 0.045, 0.040, 0.035, 0.030, 0.015, 0.0, 0.008, 0.005])
#: Fresh snow: ~0.95 in the visible, decreasing through the NIR, strongly absorbing at 1.6 and 2.2 um
#: (Warren 1982, Rev. Geophys. 20, "Optical properties of snow"; Dozier 1989, Remote Sens. Environ. 28).
SNOW = np.array([0.95, 0.95, 0.94, 0.92, 0.90, 0.88, 0.86, 0.83, 0.80, 0.70, 0.0, 0.10, 0.06])
#: Thick water cloud: bright and spectrally flat in VNIR, lower in SWIR (Zhu & Woodcock 2012, Remote Sens.
#: Environ. 118, "Object-based cloud and cloud shadow detection in Landsat imagery" (Fmask)).
CLOUD = np.array([0.55, 0.56, 0.57, 0.58, 0.58, 0.58, 0.58, 0.58, 0.57, 0.50, 0.0, 0.42, 0.28])
#: Crystalline-silicon photovoltaic modules (glass-covered, anti-reflective): dark and nearly flat, ~0.05-0.1
#: through the VNIR, a little brighter in the SWIR (magnitudes as in Czirjak 2017, J. Appl. Remote Sens. 11,
#: "Detecting photovoltaic solar panels using hyperspectral imagery and estimating solar power production").
SOLAR_PANEL = np.array([0.070, 0.075, 0.065, 0.055, 0.055, 0.055, 0.056, 0.058, 0.058, 0.058, 0.0, 0.090, 0.080])
#: Plastic (polyethylene) greenhouse covers, often whitewashed: bright, flat VNIR, lower SWIR with the plastic's
#: absorptions near 1.73 and 2.31 um (magnitudes as in Novelli et al. 2016, Int. J. Appl. Earth Obs. Geoinf. 52,
#: "Performance evaluation of object-based greenhouse detection from Sentinel-2 MSI and Landsat 8 OLI data").
GREENHOUSE = np.array([0.280, 0.300, 0.310, 0.320, 0.330, 0.340, 0.350, 0.360, 0.360, 0.340, 0.0, 0.300, 0.220])
#: Halite salt crust: very bright and flat in the VNIR, falling in the SWIR (water/hydration absorption)
#: (magnitudes as in Howari, Goodell & Miyamoto 2002, J. Environ. Qual. 31, "Spectral properties of salt crusts
#: formed on saline soils").
SALT = np.array([0.700, 0.720, 0.730, 0.730, 0.720, 0.710, 0.700, 0.690, 0.680, 0.600, 0.0, 0.500, 0.400])
#: L2A B10 level: products carry it near zero (cirrus band, no surface signal); reflectance units.
B10_LEVEL = 0.0015

#: Soil moisture darkening per band relative to the visible: water absorbs more in the SWIR (Lobell & Asner 2002,
#: Soil Sci. Soc. Am. J. 66, "Moisture effects on soil reflectance").
_MOISTURE_SLOPE = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.05, 1.1, 1.1, 1.2, 1.0, 1.4, 1.5], np.float32)

#: Canopy shadowing of forests (geometric-optical: a share ``s`` of the view sees shaded crowns that reflect ~15 %
#: of sunlit ones; Li & Strahler 1992). Needleleaf crowns are deeper and darker.
_SHADOW = {
    M["needleleaf_evergreen"]: 0.55, M["needleleaf_deciduous"]: 0.45,
    M["broadleaf_evergreen"]: 0.40, M["broadleaf_deciduous"]: 0.35, M["shrub"]: 0.2,
}
#: Canopy leaf area index range per vegetation material at full vigour (the library spans 0.5-11).
_LAI = {
    M["needleleaf_evergreen"]: (3.0, 7.0), M["needleleaf_deciduous"]: (2.0, 5.0),
    M["broadleaf_evergreen"]: (4.0, 8.0), M["broadleaf_deciduous"]: (3.0, 6.0),
    M["shrub"]: (1.0, 3.0), M["grass"]: (1.0, 4.0), M["wetland_vegetation"]: (1.5, 4.0),
    M["crop_green"]: (2.0, 6.0), M["crop_senescent"]: (0.5, 1.5),
}
#: Green cover (rest: litter + soil background) for the open vegetation materials, at vigour 0 and 1.
_GREEN_COVER = {
    M["shrub"]: (0.25, 0.75), M["grass"]: (0.2, 0.95), M["wetland_vegetation"]: (0.6, 0.9),
    M["crop_green"]: (0.6, 0.95), M["crop_senescent"]: (0.0, 0.25),
}
#: Within-object texture amplitude (relative std of a pixel's brightness) per material.
TEXTURE = np.zeros(len(MATERIALS), np.float32)
for _name, _amp in {
    "water": 0.03, "needleleaf_evergreen": 0.12, "broadleaf_evergreen": 0.10, "needleleaf_deciduous": 0.12,
    "broadleaf_deciduous": 0.10, "shrub": 0.10, "grass": 0.06, "wetland_vegetation": 0.08, "crop_green": 0.04,
    "crop_senescent": 0.05, "bare_soil": 0.05, "roof": 0.10, "pavement": 0.06, "sand": 0.04, "rock": 0.08,
    "snow": 0.03, "solar_panel": 0.04, "greenhouse": 0.06, "salt": 0.04, "char": 0.08,
}.items():
    TEXTURE[M[_name]] = _amp


@dataclass(frozen=True)
class SpectralLibrary:
    canopy: np.ndarray  # (n, 13) float32, sorted by LAI
    canopy_lai: np.ndarray
    soil: np.ndarray
    soil_lat: np.ndarray
    soil_lon: np.ndarray
    sand: np.ndarray
    gravel: np.ndarray
    npv: np.ndarray
    roof: np.ndarray
    pavement: np.ndarray
    char: np.ndarray


@lru_cache(maxsize=1)
def library() -> SpectralLibrary:
    """The committed resampled library (read once; ~200 kB)."""
    with resources.files("geodiv.simearth").joinpath("_data/spectra.npz").open("rb") as fh:
        z = np.load(fh)
        arr = {k: z[k] for k in z.files}

    def refl(key: str) -> np.ndarray:
        x = arr[key].astype(np.float32) / 10000.0
        x[:, B10] = B10_LEVEL
        return x

    order = np.argsort(arr["canopy_lai"], kind="stable")
    soil_ok = np.isfinite(arr["soil_lat"]) & np.isfinite(arr["soil_lon"])
    return SpectralLibrary(
        canopy=refl("canopy")[order], canopy_lai=arr["canopy_lai"][order],
        soil=refl("soil")[soil_ok], soil_lat=arr["soil_lat"][soil_ok], soil_lon=arr["soil_lon"][soil_ok],
        sand=refl("sand"), gravel=refl("gravel"), npv=refl("npv"), roof=refl("roof"), pavement=refl("pavement"),
        char=refl("char"),
    )


def climate_vigour(climate: str | None) -> tuple[float, float]:
    """(vigour, wetness) in [0, 1] from a Koppen-Geiger code.

    Wetness follows the precipitation letter (f: no dry season, m: monsoon, w/s: dry winter/summer, S: steppe,
    W: desert); vigour is wetness limited by temperature (E: polar/tundra, cold D climates with short seasons).
    """
    if not climate:
        return 0.5, 0.5
    main = climate[0]
    if main == "A":
        wet = {"f": 1.0, "m": 0.9}.get(climate[1:2], 0.6)
    elif main == "B":
        wet = 0.35 if climate[1:2] == "S" else 0.1
    elif main in "CD":
        wet = {"f": 0.85, "w": 0.65, "s": 0.5}.get(climate[1:2], 0.6)
    else:  # E: polar
        wet = 0.5
    temp = {"A": 1.0, "B": 0.9, "C": 1.0, "D": 0.8, "E": 0.35}.get(main, 0.8)
    if main == "D" and climate[2:3] in ("c", "d"):
        temp = 0.6
    if climate == "EF":
        temp = 0.0
    return float(wet * temp), float(wet)


@dataclass
class SpectralContext:
    rng: np.random.Generator
    vigour: float
    wetness: float
    soil_pool: np.ndarray  # indices into library().soil near the location


def soil_pool(lat: float, lon: float, k: int = 40, max_km: float = 1500.0) -> np.ndarray:
    """Indices of the ``k`` library soils nearest the location (all soils if none lies within ``max_km``).

    Looked up at 0.1-degree resolution (a bounded cache of 4096 cells; soils are sparse at that scale anyway).
    """
    return _soil_pool_cell(round(float(lat), 1), round(float(lon), 1), k, max_km)


@lru_cache(maxsize=4096)
def _soil_pool_cell(lat: float, lon: float, k: int, max_km: float) -> np.ndarray:
    lib = library()
    la, lo = np.radians(lib.soil_lat), np.radians(lib.soil_lon)
    p, q = np.radians(lat), np.radians(lon)
    d = 2 * 6371.0 * np.arcsin(np.sqrt(np.sin((la - p) / 2) ** 2 + np.cos(p) * np.cos(la) * np.sin((lo - q) / 2) ** 2))
    near = np.argpartition(d, k)[:k]
    near = near[np.argsort(d[near])]
    if d[near[0]] > max_km:
        return np.arange(len(lib.soil))
    pool = near[d[near] <= max(max_km, d[near[0]])]
    pool.flags.writeable = False  # shared by the cache
    return pool


def _canopy(ctx: SpectralContext, material: int, n: int) -> np.ndarray:
    lib = library()
    lo, hi = _LAI[material]
    # Vigour scales leaf area: an arid or cold climate carries thinner canopies of the same type.
    scale = 0.35 + 0.65 * ctx.vigour
    target = ctx.rng.uniform(lo, hi, n) * scale
    idx = np.searchsorted(lib.canopy_lai, target).clip(0, len(lib.canopy_lai) - 1)
    idx = (idx + ctx.rng.integers(-10, 11, n)).clip(0, len(lib.canopy_lai) - 1)
    return lib.canopy[idx]


def _soil(ctx: SpectralContext, n: int) -> np.ndarray:
    lib = library()
    dry = lib.soil[ctx.rng.choice(ctx.soil_pool, n)]
    # Library soils are dried, sieved lab samples; field soils are moister and rougher (darker).
    moisture = (0.1 + 0.3 * ctx.wetness) * ctx.rng.uniform(0.5, 1.5, (n, 1))
    roughness = 0.9
    return (dry * roughness * (1.0 - moisture * _MOISTURE_SLOPE)).clip(0.005, None)


def _pick(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return pool[rng.integers(0, len(pool), n)]


def material_spectra(material: int, n: int, ctx: SpectralContext) -> np.ndarray:
    """``n`` reflectance spectra (n, 13) float32 for one material (one per object)."""
    rng, lib = ctx.rng, library()
    if material == M["water"]:
        turbidity = rng.beta(1.2, 4.0, (n, 1))
        out = WATER_CLEAR + turbidity * (WATER_TURBID - WATER_CLEAR)
    elif material == M["snow"]:
        age = rng.uniform(0.0, 0.3, (n, 1))  # older, dirtier snow is darker
        out = SNOW * (1.0 - age)
    elif material in _SHADOW and material not in _GREEN_COVER:
        s = _SHADOW[material] * rng.uniform(0.85, 1.15, (n, 1))
        out = _canopy(ctx, material, n) * (1.0 - 0.85 * s)
    elif material in _GREEN_COVER:
        g0, g1 = _GREEN_COVER[material]
        green = (g0 + (g1 - g0) * ctx.vigour + rng.normal(0, 0.08, (n, 1))).clip(0.0, 1.0)
        litter = rng.uniform(0.2, 0.8, (n, 1)) if material != M["crop_senescent"] else rng.uniform(0.6, 1.0, (n, 1))
        background = litter * _pick(lib.npv, n, rng) + (1 - litter) * _soil(ctx, n)
        canopy = _canopy(ctx, material, n) * (1.0 - 0.85 * _SHADOW.get(material, 0.0))
        out = green * canopy + (1 - green) * background
        if material == M["wetland_vegetation"]:
            wet = rng.uniform(0.2, 0.45, (n, 1))  # standing water under the canopy
            out = (1 - wet) * out + wet * WATER_CLEAR
    elif material == M["bare_soil"]:
        out = _soil(ctx, n)
    elif material == M["sand"]:
        out = _pick(lib.sand, n, rng) * rng.uniform(0.85, 1.0, (n, 1))
    elif material == M["rock"]:
        out = _pick(lib.gravel, n, rng)
    elif material == M["roof"]:
        out = _pick(lib.roof, n, rng)
    elif material == M["pavement"]:
        out = _pick(lib.pavement, n, rng)
    elif material == M["solar_panel"]:
        # Rows of modules at a 5-12 m pitch are sub-pixel at 10 m: a pixel mixes modules and the ground between
        # them (ground coverage ratio 0.35-0.65).
        cover = rng.uniform(0.35, 0.65, (n, 1))
        out = cover * SOLAR_PANEL + (1 - cover) * _soil(ctx, n)
    elif material == M["greenhouse"]:
        # The cover transmits part of the view to the crop below (more where not whitewashed).
        cover = rng.uniform(0.55, 0.95, (n, 1))
        out = cover * GREENHOUSE * rng.uniform(0.8, 1.15, (n, 1)) + (1 - cover) * _canopy(ctx, M["crop_green"], n)
    elif material == M["salt"]:
        # Brine to crystalliser: salt share 0.15 (a brine pond over turbid water) .. 1 (a dry crust).
        share = rng.uniform(0.15, 1.0, (n, 1))
        out = share * SALT * rng.uniform(0.85, 1.0, (n, 1)) + (1 - share) * WATER_TURBID
    elif material == M["char"]:
        out = _pick(lib.char, n, rng)
    else:  # pragma: no cover - every material is handled above
        raise ValueError(f"no spectra for material {MATERIALS[material]}")
    out = np.asarray(out, np.float32)
    out[:, B10] = B10_LEVEL
    return out


def object_spectra(object_material: np.ndarray, ctx: SpectralContext) -> np.ndarray:
    """One spectrum per object (n_objects, 13), drawn material by material (vectorised per material)."""
    out = np.empty((len(object_material), N_BANDS), np.float32)
    for mat in np.unique(object_material):
        sel = np.flatnonzero(object_material == mat)
        out[sel] = material_spectra(int(mat), len(sel), ctx)
    return out


def haze_spectrum(optical_depth: float) -> np.ndarray:
    """Additive path reflectance of residual haze: ~0.05 per unit optical depth at 550 nm, Angstrom exponent 1.3."""
    out = 0.05 * optical_depth * (_WL / 550.0) ** -1.3
    out[B10] = 0.0
    return out.astype(np.float32)
