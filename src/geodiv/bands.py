"""Sentinel-2 bands: names, order, wavelengths, and the statistics SatMAE normalises with.

Every stage speaks of bands by name ("B8A"), never by position, and converts with ``band_indices``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from geodiv.errors import InputError

#: The 13-band order of Sentinel-2 L1C/L2A products, fMoW-Sentinel and SatMAE.
S2_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")

#: The band order of EuroSAT-MS GeoTIFFs: B1..B12 then B8A (phelber/EuroSAT issue 7; torchgeo PR 2480).
EUROSAT_MS_BANDS: tuple[str, ...] = tuple(b for b in S2_BANDS if b != "B8A") + ("B8A",)

#: The 13 channels of the brick-kiln images (Lee et al. 2021, exported by mliu356/kiln-scaling's get_images
#: notebook; ServiceNow/geo-bench issue 29): ten bands, then the 8-bit true-colour product (TCI) red, green, blue,
#: which are no bands (None).
BRICK_KILN_CHANNELS: tuple[str | None, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B7", "B8A", "B8", "B11", "B12", None, None, None,
)

#: Central wavelength and bandwidth in nm (Sentinel-2A, ESA Sentinel-2 User Handbook).
S2_CENTER_NM: dict[str, float] = {
    "B1": 442.7, "B2": 492.4, "B3": 559.8, "B4": 664.6, "B5": 704.1, "B6": 740.5, "B7": 782.8,
    "B8": 832.8, "B8A": 864.7, "B9": 945.1, "B10": 1373.5, "B11": 1613.7, "B12": 2202.4,
}
S2_WIDTH_NM: dict[str, float] = {
    "B1": 21, "B2": 66, "B3": 36, "B4": 31, "B5": 15, "B6": 15, "B7": 20,
    "B8": 106, "B8A": 21, "B9": 20, "B10": 31, "B11": 91, "B12": 175,
}
#: Native ground sampling distance in metres.
S2_GSD_M: dict[str, int] = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20,
    "B8": 10, "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}

#: The 10 bands the pretrain-where SatMAE runs keep (B1, B9, B10 dropped).
SATMAE_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
#: SatMAE's default channel groups, as indices into ``SATMAE_BANDS``: (B2,B3,B4,B8), (B5,B6,B7,B8A), (B11,B12).
SATMAE_GROUPS: tuple[tuple[int, ...], ...] = ((0, 1, 2, 6), (3, 4, 5, 7), (8, 9))

#: Per-band mean and std of fMoW-Sentinel (13-band order), as SatMAE normalises with them.
SATMAE_MEAN: tuple[float, ...] = (
    1370.19151926, 1184.3824625, 1120.77120066, 1136.26026392, 1263.73947144, 1645.40315151,
    1846.87040806, 1762.59530783, 1972.62420416, 582.72633433, 14.77112979, 1732.16362238, 1247.91870117,
)
SATMAE_STD: tuple[float, ...] = (
    633.15169573, 650.2842772, 712.12507725, 965.23119807, 948.9819932, 1108.06650639,
    1258.36394548, 1233.1492281, 1364.38688993, 472.37967789, 14.3114637, 1310.36996126, 1087.6020813,
)


def canonical_band(name: str) -> str:
    """Map the spellings found in the wild to ``S2_BANDS`` names.

    Accepts "B8A", "b8a", "B08", "8A", "08A - Vegetation Red Edge" (GEO-Bench), "B02" (Sentinel Hub) ...
    """
    raw = name.strip()
    m = re.match(r"^(?:[Bb])?0*(\d{1,2})([Aa])?\b", raw)
    if m:
        candidate = f"B{int(m.group(1))}{'A' if m.group(2) else ''}"
        if candidate in S2_CENTER_NM:
            return candidate
    raise InputError(
        f"unknown Sentinel-2 band name {name!r}; expected one of {', '.join(S2_BANDS)} "
        "(spellings such as 'B08', '8A' or '08A - Vegetation Red Edge' are accepted)"
    )


def band_indices(available: Sequence[str], wanted: Sequence[str], *, where: str = "input") -> list[int]:
    """Positions of ``wanted`` bands in ``available`` (both by name); a clear error names what is missing."""
    canon = [canonical_band(b) for b in available]
    out = []
    missing = []
    for w in wanted:
        cw = canonical_band(w)
        if cw in canon:
            out.append(canon.index(cw))
        else:
            missing.append(w)
    if missing:
        raise InputError(
            f"{where} lacks band(s) {', '.join(missing)}; it has {', '.join(canon)}. "
            "Choose bands the data has, or ask for mean-filling of missing bands where the command offers it."
        )
    return out


def satmae_stats(bands: Sequence[str]) -> tuple[list[float], list[float]]:
    """SatMAE's fMoW-Sentinel mean and std for the named bands."""
    idx = band_indices(S2_BANDS, bands, where="SatMAE statistics")
    return [SATMAE_MEAN[i] for i in idx], [SATMAE_STD[i] for i in idx]
