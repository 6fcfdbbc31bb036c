"""Realism, measured: SimEarth's statistics next to real Sentinel-2 statistics.

The real figures come from a committed table (``_data/realism_stats.json``) that
``scripts/derive_realism_stats.py`` derives from (a) 500 real Sentinel-2 L2A pixels of the WorldCereal test set
(per WorldCover class band means, NDVI, NDWI) and (b) the six BigEarthNet-S2 example patches (spatial
autocorrelation length, inter-band correlation). The statistic functions here are the single implementation used
on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.bands import S2_BANDS, band_indices
from geodiv.errors import DataError

#: Bands compared with the WorldCereal pixels (the 10 it has).
COMPARED_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
#: Bands whose inter-band correlation is compared with BigEarthNet (10 m and 20 m bands).
CORRELATION_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B8", "B11", "B12")
#: Bands whose autocorrelation length is compared (the 10 m bands carry the finest structure).
ACF_BANDS: tuple[str, ...] = ("B4", "B8")

#: Tolerances that tests and ``geodiv simearth check`` hold SimEarth to (see docs/simearth.md for why).
TOLERANCES: dict[str, float] = {
    # relative error of a class's mean reflectance, averaged over COMPARED_BANDS
    "band_mean_rel": 0.45,
    # absolute difference of a class's mean NDVI / NDWI
    "ndvi_abs": 0.2,
    "ndwi_abs": 0.2,
    # ratio of autocorrelation lengths (sim / real) must lie within [1/x, x]
    "acf_ratio": 2.5,
    # mean absolute difference of the upper-triangle inter-band correlations
    "corr_abs": 0.3,
}


#: Band order of a BigEarthNet-S2 patch (12 bands; L2A products drop B10).
BEN_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")


def read_bigearthnet_patch(folder: str | Path) -> np.ndarray:
    """(12, H, W) float64 image at 10 m of one BigEarthNet-S2 patch folder (one GeoTIFF per band, BEN_BANDS order).

    20 m and 60 m bands are brought to the 10 m grid by pixel repetition.
    """
    import rasterio

    folder = Path(folder)
    arrays = []
    for band in BEN_BANDS:
        tag = "B8A" if band == "B8A" else f"B{band[1:].zfill(2)}"
        paths = list(folder.glob(f"*_{tag}.tif"))
        if len(paths) != 1:
            raise DataError(f"{folder} should hold one *_{tag}.tif (BigEarthNet-S2 layout), found {len(paths)}")
        with rasterio.open(paths[0]) as src:
            arrays.append(src.read(1).astype(np.float64))
    size = max(a.shape[0] for a in arrays)
    return np.stack([np.kron(a, np.ones((size // a.shape[0], size // a.shape[1]))) for a in arrays])


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    red = np.asarray(red, np.float64)
    nir = np.asarray(nir, np.float64)
    return (nir - red) / np.maximum(nir + red, 1e-6)


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """McFeeters (1996) NDWI: (green - NIR) / (green + NIR); positive over open water."""
    green = np.asarray(green, np.float64)
    nir = np.asarray(nir, np.float64)
    return (green - nir) / np.maximum(green + nir, 1e-6)


def autocorrelation_length(band: np.ndarray) -> float:
    """Spatial e-folding length in pixels: the lag where the radially averaged autocorrelation drops below 1/e.

    The autocorrelation comes from the zero-padded FFT of the mean-removed band (Wiener-Khinchin), normalised
    by the overlap count at each lag; lags are averaged over rings of integer radius and interpolated linearly.
    A constant band returns 0.
    """
    x = np.asarray(band, np.float64)
    x = x - x.mean()
    h, w = x.shape
    var = (x * x).mean()
    if var <= 0:
        return 0.0
    f = np.fft.rfft2(x, s=(2 * h, 2 * w))
    acf = np.fft.irfft2(f * np.conj(f), s=(2 * h, 2 * w))
    ones = np.fft.rfft2(np.ones_like(x), s=(2 * h, 2 * w))
    counts = np.fft.irfft2(ones * np.conj(ones), s=(2 * h, 2 * w))
    acf = acf / np.maximum(counts, 1.0) / var
    dy = np.minimum(np.arange(2 * h), 2 * h - np.arange(2 * h))[:, None]
    dx = np.minimum(np.arange(2 * w), 2 * w - np.arange(2 * w))[None, :]
    radius = np.rint(np.hypot(dy, dx)).astype(int)
    max_r = min(h, w) // 2
    keep = radius <= max_r
    ring = np.bincount(radius[keep], weights=acf[keep], minlength=max_r + 1)
    ring /= np.maximum(np.bincount(radius[keep], minlength=max_r + 1), 1)
    below = np.nonzero(ring < np.exp(-1.0))[0]
    if len(below) == 0:
        return float(max_r)
    r = int(below[0])
    a, b = ring[r - 1], ring[r]
    return float(r - 1 + (a - np.exp(-1.0)) / (a - b))


def interband_correlation(image: np.ndarray, bands: Sequence[str] = CORRELATION_BANDS,
                          image_bands: Sequence[str] = S2_BANDS) -> np.ndarray:
    """Pearson correlation matrix between the named bands over the pixels of a (C, H, W) image."""
    idx = band_indices(image_bands, bands, where="image")
    x = np.asarray(image, np.float64)[idx].reshape(len(idx), -1)
    x = x + 1e-9 * np.arange(x.shape[1])  # a constant band would make corrcoef NaN
    return np.corrcoef(x)


def spatial_stats(image: np.ndarray, image_bands: Sequence[str] = S2_BANDS) -> dict[str, Any]:
    """Autocorrelation length per ACF band and the inter-band correlation matrix of one (C, H, W) patch."""
    idx = band_indices(image_bands, ACF_BANDS, where="image")
    return {
        "acf_length_px": {b: autocorrelation_length(image[i]) for b, i in zip(ACF_BANDS, idx)},
        "correlation": interband_correlation(image, CORRELATION_BANDS, image_bands).tolist(),
    }


def upper_triangle(matrix: np.ndarray | list) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    return m[np.triu_indices(len(m), 1)]


@lru_cache(maxsize=1)
def real_stats() -> dict[str, Any]:
    """The committed real-data statistics table."""
    text = resources.files("geodiv.simearth").joinpath("_data/realism_stats.json").read_text(encoding="utf-8")
    return json.loads(text)


#: Which SimEarth pixel classes stand for each WorldCover class of the real table.
SIM_FOR_WORLDCOVER: dict[str, tuple[str, ...]] = {
    "tree_cover": ("needleleaf_evergreen", "broadleaf_evergreen", "needleleaf_deciduous", "broadleaf_deciduous",
                   "mixed_forest"),
    "shrubland": ("shrubland",),
    "grassland": ("grassland",),
    "cropland": ("cropland",),
    "built_up": ("built_up", "road"),
    "bare_sparse": ("barren",),
    "snow_ice": ("snow_ice",),
    "water": ("water",),
    "herbaceous_wetland": ("wetland",),
}


def _continent_quota(real_classes: dict[str, Any], n: int) -> dict[str, int]:
    """Patches per continent, in proportion to where the real pixels are (at least one per continent present)."""
    totals: dict[str, int] = {}
    for c in real_classes.values():
        for cont, k in c.get("continents", {}).items():
            totals[cont] = totals.get(cont, 0) + k
    total = sum(totals.values())
    return {cont: max(1, round(n * k / total)) for cont, k in sorted(totals.items())}


def realism_check(seed: int = 0, n_patches: int = 48, size: int = 48) -> dict[str, Any]:
    """SimEarth's per-class band means, NDVI/NDWI and spatial statistics next to the real ones.

    Simulated side: ``n_patches`` patches at land locations sampled per continent in proportion to the real
    pixels' continents (per-class pixel statistics), and one patch at each BigEarthNet example location, the same
    size as the real patch (spatial statistics).
    """
    real = real_stats()
    classes, n_located = _class_comparison(real, seed, n_patches, size)
    spatial = _spatial_comparison(real, seed)
    return {"seed": seed, "n_patches": n_located, "size": size, "tolerances": TOLERANCES, "classes": classes,
            "spatial": spatial,
            "structures": structure_spatial_stats(seed), "sources": real["sources"],
            "note": "SimEarth is a simulation; real figures are measured on real Sentinel-2 L2A data."}


def _class_comparison(real: dict[str, Any], seed: int, n_patches: int, size: int) -> tuple[dict[str, Any], int]:
    """Per WorldCover class, the simulated pixels' band means and NDVI/NDWI next to the real ones, over
    ``n_patches`` patches at land locations drawn per continent as the real pixels are; and how many were drawn."""
    from geodiv.geo import sample_locations
    from geodiv.simearth.layout import C as sim_code
    from geodiv.simearth.world import simulate_patches

    bands_idx = band_indices(S2_BANDS, COMPARED_BANDS)
    lats, lons = [], []
    for k, (cont, quota) in enumerate(_continent_quota(real["classes"], n_patches).items()):
        la, lo = sample_locations(cont, quota, seed=seed * 100 + k)
        lats.extend(la)
        lons.extend(lo)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    index_sums: dict[str, np.ndarray] = {}
    for patch in simulate_patches(np.array(lats), np.array(lons), seed, size=size):
        img = patch.image[bands_idx].reshape(len(bands_idx), -1).astype(np.float64)
        cls = patch.classes.ravel()
        red, green, nir = (img[COMPARED_BANDS.index(b)] for b in ("B4", "B3", "B8"))
        nd, nw = ndvi(red, nir), ndwi(green, nir)
        for wc, members in SIM_FOR_WORLDCOVER.items():
            sel = np.isin(cls, [sim_code[m] for m in members])
            if not sel.any():
                continue
            sums[wc] = sums.get(wc, 0) + img[:, sel].sum(1)
            index_sums[wc] = index_sums.get(wc, 0) + np.array([nd[sel].sum(), nw[sel].sum()])
            counts[wc] = counts.get(wc, 0) + int(sel.sum())

    classes: dict[str, Any] = {}
    for wc, r in real["classes"].items():
        entry: dict[str, Any] = {"n_real": r["n"], "real_band_mean": r["band_mean"],
                                 "real_ndvi": r["ndvi_mean"], "real_ndwi": r["ndwi_mean"], "n_sim_px": counts.get(wc, 0)}
        if counts.get(wc, 0) > 0:
            mean = sums[wc] / counts[wc]
            sim_nd, sim_nw = index_sums[wc] / counts[wc]
            rel = np.mean([abs(mean[i] - r["band_mean"][b]) / max(r["band_mean"][b], 1.0)
                           for i, b in enumerate(COMPARED_BANDS)])
            entry.update(
                sim_band_mean={b: round(float(mean[i]), 1) for i, b in enumerate(COMPARED_BANDS)},
                sim_ndvi=round(float(sim_nd), 4), sim_ndwi=round(float(sim_nw), 4),
                band_mean_rel_error=round(float(rel), 4),
                ndvi_diff=round(float(sim_nd - r["ndvi_mean"]), 4), ndwi_diff=round(float(sim_nw - r["ndwi_mean"]), 4),
            )
            entry["within_tolerance"] = bool(
                rel <= TOLERANCES["band_mean_rel"] and abs(entry["ndvi_diff"]) <= TOLERANCES["ndvi_abs"]
                and abs(entry["ndwi_diff"]) <= TOLERANCES["ndwi_abs"])
        classes[wc] = entry
    return classes, len(lats)


def _spatial_comparison(real: dict[str, Any], seed: int) -> dict[str, Any]:
    """Autocorrelation lengths and band correlations of one simulated patch at each real example location, next to
    the real patches' (a summary with its tolerance verdict, and each patch)."""
    from geodiv.simearth.world import simulate_patches

    spatial = {}
    sim_acf: dict[str, list[float]] = {b: [] for b in ACF_BANDS}
    sim_corr = []
    for name, rp in real["spatial"]["patches"].items():
        patch = next(simulate_patches([rp["lat"]], [rp["lon"]], seed, size=rp["size"]))
        st = spatial_stats(patch.image.astype(np.float64))
        for b in ACF_BANDS:
            sim_acf[b].append(st["acf_length_px"][b])
        sim_corr.append(st["correlation"])
        spatial[name] = {"lat": rp["lat"], "lon": rp["lon"], "real_acf_length_px": rp["acf_length_px"],
                         "sim_acf_length_px": {b: round(v, 2) for b, v in st["acf_length_px"].items()},
                         "sim_landcover": patch.meta["landcover"]}
    real_acf = real["spatial"]["mean_acf_length_px"]
    acf_ratio = {b: float(np.mean(sim_acf[b]) / real_acf[b]) for b in ACF_BANDS}
    corr_diff = float(np.mean(np.abs(upper_triangle(np.mean(sim_corr, 0))
                                     - upper_triangle(real["spatial"]["mean_correlation"]))))
    summary = {
        "real_mean_acf_length_px": {b: round(v, 2) for b, v in real_acf.items()},
        "sim_mean_acf_length_px": {b: round(float(np.mean(v)), 2) for b, v in sim_acf.items()},
        "acf_ratio": {b: round(v, 3) for b, v in acf_ratio.items()},
        "real_mean_correlation": real["spatial"]["mean_correlation"],
        "sim_mean_correlation": np.round(np.mean(sim_corr, 0), 4).tolist(),
        "correlation_mean_abs_diff": round(corr_diff, 4),
        "within_tolerance": bool(all(1 / TOLERANCES["acf_ratio"] <= v <= TOLERANCES["acf_ratio"]
                                     for v in acf_ratio.values()) and corr_diff <= TOLERANCES["corr_abs"]),
    }
    return {"summary": summary, "patches": spatial}


def structure_spatial_stats(seed: int = 0) -> dict[str, Any]:
    """Spatial statistics of each structure next to the real BigEarthNet-S2 patches: one simulated patch per
    structure (centred on it, the real patches' size), at the real patches' locations in turn. Reported, not held
    to the tolerances: a real patch holds whatever stands there, not a chosen structure."""
    from geodiv.simearth.structures import STRUCTURES
    from geodiv.simearth.world import simulate_patch

    real = real_stats()["spatial"]
    places = list(real["patches"].values())
    real_corr = upper_triangle(real["mean_correlation"])
    out: dict[str, Any] = {}
    for k, name in enumerate(STRUCTURES):
        rp = places[k % len(places)]
        patch = simulate_patch(rp["lat"], rp["lon"], seed, size=rp["size"], structure=name)
        st = spatial_stats(patch.image.astype(np.float64))
        ratio = {b: st["acf_length_px"][b] / real["mean_acf_length_px"][b] for b in ACF_BANDS}
        out[name] = {
            "lat": rp["lat"], "lon": rp["lon"], "size": rp["size"],
            "sim_acf_length_px": {b: round(v, 2) for b, v in st["acf_length_px"].items()},
            "acf_ratio": {b: round(v, 3) for b, v in ratio.items()},
            "correlation_mean_abs_diff": round(float(np.mean(np.abs(upper_triangle(st["correlation"]) - real_corr))),
                                               4),
            "within_acf_tolerance": bool(all(1 / TOLERANCES["acf_ratio"] <= v <= TOLERANCES["acf_ratio"]
                                             for v in ratio.values())),
        }
    return out


def format_realism_check(report: dict[str, Any]) -> str:
    """A readable table of ``realism_check``'s result."""
    lines = [f"SimEarth realism check (seed {report['seed']}, {report['n_patches']} simulated patches of "
             f"{report['size']} px; SimEarth is a simulation, real = measured Sentinel-2 L2A)", ""]
    lines.append("Per-class band means (reflectance x 10000): sim / real")
    lines.append(f"{'class':20s} {'n_real':>6s} {'n_sim_px':>8s}  " + " ".join(f"{b:>11s}" for b in COMPARED_BANDS)
                 + f"  {'NDVI sim/real':>13s} {'NDWI sim/real':>13s}  rel.err  ok")
    for name, c in report["classes"].items():
        if "sim_band_mean" not in c:
            lines.append(f"{name:20s} {c['n_real']:6d} {0:8d}  (no simulated pixels of this class)")
            continue
        cells = " ".join(f"{c['sim_band_mean'][b]:5.0f}/{c['real_band_mean'][b]:<5.0f}" for b in COMPARED_BANDS)
        lines.append(f"{name:20s} {c['n_real']:6d} {c['n_sim_px']:8d}  {cells}  "
                     f"{c['sim_ndvi']:6.2f}/{c['real_ndvi']:<6.2f} {c['sim_ndwi']:6.2f}/{c['real_ndwi']:<6.2f}  "
                     f"{c['band_mean_rel_error']:7.2f}  {'yes' if c['within_tolerance'] else 'NO'}")
    s = report["spatial"]["summary"]
    lines += ["", "Spatial statistics vs the BigEarthNet-S2 example patches (same locations, same size)"]
    for b in ACF_BANDS:
        lines.append(f"  autocorrelation length {b}: sim {s['sim_mean_acf_length_px'][b]:.1f} px, "
                     f"real {s['real_mean_acf_length_px'][b]:.1f} px (ratio {s['acf_ratio'][b]:.2f})")
    lines.append(f"  inter-band correlation ({', '.join(CORRELATION_BANDS)}): mean |sim - real| = "
                 f"{s['correlation_mean_abs_diff']:.3f}")
    for name, p in report["spatial"]["patches"].items():
        lines.append(f"    {name}: ({p['lat']:.2f}, {p['lon']:.2f}) sim {p['sim_landcover']}; acf B4 sim "
                     f"{p['sim_acf_length_px']['B4']:.1f} / real {p['real_acf_length_px']['B4']:.1f}")
    if report.get("structures"):
        real_acf = s["real_mean_acf_length_px"]
        lines += ["", "Structures (one patch each, centred on it, at the BigEarthNet locations in turn) vs the mean of "
                  f"the real patches (acf B4 {real_acf['B4']:.1f} px, B8 {real_acf['B8']:.1f} px); reported only"]
        lines.append(f"  {'structure':22s} {'acf B4':>7s} {'acf B8':>7s} {'ratio B4':>8s} {'ratio B8':>8s} "
                     f"{'|corr diff|':>11s}")
        for name, st in report["structures"].items():
            lines.append(f"  {name:22s} {st['sim_acf_length_px']['B4']:7.1f} {st['sim_acf_length_px']['B8']:7.1f} "
                         f"{st['acf_ratio']['B4']:8.2f} {st['acf_ratio']['B8']:8.2f} "
                         f"{st['correlation_mean_abs_diff']:11.3f}")
    t = report["tolerances"]
    lines += ["", f"Tolerances: band means within {t['band_mean_rel']:.0%} (mean relative error), NDVI/NDWI within "
              f"{t['ndvi_abs']}, autocorrelation length within x{t['acf_ratio']}, correlations within "
              f"{t['corr_abs']}; spatial ok: {'yes' if s['within_tolerance'] else 'NO'}"]
    return "\n".join(lines)
