"""Resample earthlib's measured spectra to the 13 Sentinel-2 bands -> src/geodiv/simearth/_data/spectra.npz.

Source: earthlib 1.1.0 (PyPI, MIT; Anderson, C. B., "earthlib: a spectral library for earth observation"),
files spectra.sli (ENVI spectral library, 7,261 spectra, 400-2450 nm at 10 nm with the 1350-1450 nm and
1800-1950 nm water-absorption windows removed) and spectra.csv (class levels, lat/lon, source).

Spectral response: a Gaussian per band with full width at half maximum = the published bandwidth
(``geodiv.bands.S2_WIDTH_NM``) around the published centre (``S2_CENTER_NM``), integrated over the library's
sampled wavelengths with trapezoid weights and renormalised over what is sampled. B10 (1373.5 nm) lies in the
removed absorption window: it is written as NaN here and set by ``geodiv.simearth.spectra`` (near zero, as in
L2A products).

Run:  python scripts/derive_spectra.py [--earthlib ../shared/data/earthlib] [--out src/geodiv/simearth/_data]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from geodiv.atomic import atomic_path
from geodiv.bands import S2_BANDS, S2_CENTER_NM, S2_WIDTH_NM

ROOT = Path(__file__).resolve().parents[1]

#: earthlib LEVEL_3 names grouped into the material groups SimEarth draws from.
GROUPS: dict[str, tuple[str, ...]] = {
    "soil": ("soil", "dirt"),
    "sand": ("sand",),
    "gravel": ("gravel",),
    "npv": ("litter", "npv", "wood", "bark"),
    "char": ("char",),
    "roof": ("comp_shingle", "concrete_tile", "tile", "wood_shingle", "metal", "paint", "glass", "mixed", "other"),
    "pavement": ("asphalt", "road", "parking_lot", "sidewalk", "driveway", "bridge"),
}


def read_envi_sli(sli: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(spectra (n, bands) float32, wavelengths nm, names) from an ENVI spectral library + header."""
    header = sli.with_name(sli.name + ".hdr").read_text()

    def field(name: str) -> str:
        m = re.search(rf"^{name}\s*=\s*(\{{.*?\}}|[^\n]*)", header, flags=re.M | re.S)
        if not m:
            raise SystemExit(f"{sli}.hdr has no '{name}' field")
        return m.group(1).strip().strip("{}")

    samples, lines = int(field("samples")), int(field("lines"))
    if field("data type") != "4" or field("byte order") != "0":
        raise SystemExit("expected little-endian float32 ENVI library")
    wl = np.array([float(x) for x in field("wavelength").split(",")])
    if "micrometer" in field("wavelength units").lower():
        wl = wl * 1000.0
    names = [x.strip() for x in field("spectra names").split(",")]
    data = np.fromfile(sli, dtype="<f4", count=samples * lines).reshape(lines, samples)
    return data, wl, names


def gaussian_srf_weights(wavelengths_nm: np.ndarray) -> np.ndarray:
    """(13, n_wavelengths) weights; a band with no sampled response gets a row of NaN."""
    # Trapezoid integration weights for an irregular grid (gaps are not bridged: a gap > 15 nm ends a segment).
    dx = np.diff(wavelengths_nm)
    seg = np.where(dx <= 15.0, dx, 0.0)
    trap = np.zeros_like(wavelengths_nm)
    trap[:-1] += seg / 2
    trap[1:] += seg / 2
    rows = []
    for band in S2_BANDS:
        sigma = S2_WIDTH_NM[band] / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        resp = np.exp(-0.5 * ((wavelengths_nm - S2_CENTER_NM[band]) / sigma) ** 2) * trap
        # A band counts as sampled only if the library covers its centre region.
        near = np.abs(wavelengths_nm - S2_CENTER_NM[band]) <= max(S2_WIDTH_NM[band] / 2, 10.0)
        rows.append(resp / resp.sum() if near.any() and resp.sum() > 0 else np.full_like(resp, np.nan))
    return np.stack(rows)


def _lai_chl(name: str) -> tuple[float, float, float]:
    # PROSAIL canopy names look like "v-LAI-4.2-LMA-0.010-CHL-13.9-N-2.1".
    m = re.match(r"v-LAI-([\d.e+-]+?)-LMA-([\d.e+-]+?)-CHL-([\d.e+-]+?)-N", name)
    if not m:
        raise SystemExit(f"unexpected canopy spectrum name {name!r}")
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--earthlib", type=Path, default=ROOT.parent / "shared" / "data" / "earthlib")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "geodiv" / "simearth" / "_data")
    args = ap.parse_args()

    data, wl, names = read_envi_sli(args.earthlib / "spectra.sli")
    meta = pd.read_csv(args.earthlib / "spectra.csv")
    # The two files list the same spectra in the same order (one name is spelled differently: 'burncham').
    same = sum(a == b for a, b in zip(meta["NAME"], names))
    if len(meta) != len(names) or same < len(names) - 5:
        raise SystemExit("spectra.csv and spectra.sli disagree on the spectra order")
    weights = gaussian_srf_weights(wl)
    sampled = ~np.isnan(weights[:, 0])
    s2 = np.full((len(data), len(S2_BANDS)), np.nan, dtype=np.float64)
    s2[:, sampled] = data.astype(np.float64) @ weights[sampled].T
    ok = np.isfinite(s2[:, sampled]).all(1) & (s2[:, sampled] >= 0).all(1) & (s2[:, sampled] <= 1.2).all(1)

    arrays: dict[str, np.ndarray] = {"bands": np.array(S2_BANDS), "sampled": sampled}

    def pack(x: np.ndarray) -> np.ndarray:
        # Reflectance x 10000 in uint16 (like the products); B10 (unsampled) stored as 0.
        return np.round(np.nan_to_num(x, nan=0.0) * 10000).clip(0, 65535).astype(np.uint16)

    veg = ok & (meta["LEVEL_2"] == "vegetation").to_numpy()
    params = np.array([_lai_chl(n) for n in meta.loc[veg, "NAME"]])
    arrays["canopy"] = pack(s2[veg])
    arrays["canopy_lai"], arrays["canopy_lma"], arrays["canopy_chl"] = (params[:, i].astype(np.float32) for i in range(3))
    for group, level3 in GROUPS.items():
        sel = ok & meta["LEVEL_3"].isin(level3).to_numpy() & (meta["LEVEL_2"] != "vegetation").to_numpy()
        arrays[group] = pack(s2[sel])
        if group == "soil":
            lat = meta.loc[sel, "LAT"].to_numpy(np.float32)
            lon = meta.loc[sel, "LON"].to_numpy(np.float32)
            arrays["soil_lat"], arrays["soil_lon"] = lat, lon
        print(f"{group:9s} {int(sel.sum()):5d} spectra")
    print(f"canopy    {int(veg.sum()):5d} spectra (PROSAIL, LAI {params[:, 0].min():.1f}-{params[:, 0].max():.1f})")
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "spectra.npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    print(f"wrote {args.out / 'spectra.npz'}")


if __name__ == "__main__":
    main()
