"""Derive the real Sentinel-2 statistics SimEarth is checked against -> src/geodiv/simearth/_data/realism_stats.json.

Inputs (neither is committed; only the derived figures are):
- ``worldcereal_testdf.parquet`` (WorldCereal / presto-worldcereal test set, MIT): 500 real Sentinel-2 L2A pixels
  with 12 monthly composites of 10 bands, reflectance x 10000, nodata 65535, and an ESA WorldCover label.
  Per pixel the temporal median of the valid, cloud-screened months is taken (a month is dropped when any band
  is nodata or B2 > 2000, a bright-cloud screen); then per WorldCover class: mean and std of each band, of NDVI
  and of NDWI over pixels, the pixel count, and the pixels' continents (Natural Earth, for sampling the
  simulated side the same way).
- BigEarthNet-S2 example patches (bigearthnet-common 2.8.0 on PyPI, file BigEarthNet-S2-Example.tar.bz2;
  BigEarthNet, CDLA-Permissive-1.0; Sumbul et al. 2019): six real 120 x 120 L2A patches from Europe. Per patch:
  autocorrelation length of B4 and B8 and the inter-band correlation matrix (``geodiv.simearth.realism``),
  with 20 m / 60 m bands brought to 10 m by pixel repetition.

Run:  pip download --no-deps bigearthnet-common==2.8.0 -d /tmp/ben && (cd /tmp/ben && unzip -o *.whl \\
        'bigearthnet_common/BigEarthNet-S2-Example.tar.bz2' && tar xjf bigearthnet_common/BigEarthNet-S2-Example.tar.bz2)
      python scripts/derive_realism_stats.py --bigearthnet /tmp/ben/BigEarthNet-S2-Example
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from geodiv.atomic import write_json
from geodiv.simearth.realism import (
    BEN_BANDS,
    COMPARED_BANDS,
    ndvi,
    ndwi,
    read_bigearthnet_patch,
    spatial_stats,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

#: ESA WorldCover 2020 class codes and names.
WORLDCOVER = {10: "tree_cover", 20: "shrubland", 30: "grassland", 40: "cropland", 50: "built_up",
              60: "bare_sparse", 70: "snow_ice", 80: "water", 90: "herbaceous_wetland", 95: "mangroves",
              100: "moss_lichen"}


def worldcereal_stats(parquet: Path, world_gpkg: Path) -> dict:
    import geopandas as gpd

    df = pd.read_parquet(parquet)
    cols = {b: [f"OPTICAL-B{b[1:].zfill(2) if b != 'B8A' else '8A'}-ts{t}-{'10m' if b in ('B2', 'B3', 'B4', 'B8') else '20m'}"
                for t in range(12)] for b in COMPARED_BANDS}
    cube = np.stack([df[cols[b]].to_numpy(np.float64) for b in COMPARED_BANDS], axis=-1)  # (N, 12, 10)
    valid = (cube != 65535).all(-1) & (cube[..., 0] <= 2000)
    cube[~valid] = np.nan
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels with no clear month become NaN, dropped below
            med = np.nanmedian(cube, axis=1)  # (N, 10)
    keep = np.isfinite(med).all(1)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")
    world = gpd.read_file(world_gpkg)[["continent", "geometry"]]
    joined = gpd.sjoin_nearest(pts.to_crs("EPSG:8857"), world.to_crs("EPSG:8857"), how="left")
    continent = joined.groupby(level=0)["continent"].first().reindex(range(len(df))).to_numpy()
    b = {name: i for i, name in enumerate(COMPARED_BANDS)}
    out = {}
    for code, name in WORLDCOVER.items():
        sel = keep & (df["WORLDCOVER-LABEL-10m"].to_numpy() == code)
        if sel.sum() < 3:
            continue
        m = med[sel]
        nd = ndvi(m[:, b["B4"]], m[:, b["B8"]])
        nw = ndwi(m[:, b["B3"]], m[:, b["B8"]])
        conts, counts = np.unique(continent[sel].astype(str), return_counts=True)
        out[name] = {
            "n": int(sel.sum()),
            "band_mean": {band: round(float(m[:, i].mean()), 1) for band, i in b.items()},
            "band_std": {band: round(float(m[:, i].std()), 1) for band, i in b.items()},
            "ndvi_mean": round(float(nd.mean()), 4), "ndvi_std": round(float(nd.std()), 4),
            "ndwi_mean": round(float(nw.mean()), 4), "ndwi_std": round(float(nw.std()), 4),
            "continents": {c: int(k) for c, k in zip(conts, counts)},
        }
    return out


def patch_centre(folder: Path) -> tuple[float, float]:
    """(lat, lon) of a patch's centre, from its GeoTIFF georeferencing."""
    import rasterio
    from pyproj import Transformer

    with rasterio.open(next(folder.glob("*_B02.tif"))) as src:
        x, y = src.xy(src.height // 2, src.width // 2)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return round(float(lat), 4), round(float(lon), 4)


def bigearthnet_stats(root: Path) -> dict:
    patches = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        img = read_bigearthnet_patch(folder)
        stats = spatial_stats(img, BEN_BANDS)
        stats["lat"], stats["lon"] = patch_centre(folder)
        stats["size"] = int(img.shape[-1])
        stats["band_mean"] = {b: round(float(img[i].mean()), 1) for i, b in enumerate(BEN_BANDS)}
        patches[folder.name] = stats
    acf = {b: float(np.mean([p["acf_length_px"][b] for p in patches.values()])) for b in ("B4", "B8")}
    corr = np.mean([p["correlation"] for p in patches.values()], axis=0)
    return {"patches": patches, "mean_acf_length_px": acf, "mean_correlation": corr.round(4).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worldcereal", type=Path, default=SHARED / "worldcereal_testdf.parquet")
    ap.add_argument("--world", type=Path, default=SHARED / "world.gpkg")
    ap.add_argument("--bigearthnet", type=Path, required=True, help="extracted BigEarthNet-S2-Example folder")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "geodiv" / "simearth" / "_data" / "realism_stats.json")
    args = ap.parse_args()
    table = {
        "sources": {
            "worldcereal": "WorldCereal test set (presto-worldcereal, MIT): 500 Sentinel-2 L2A pixels, temporal "
                           "median of cloud-screened monthly composites, grouped by ESA WorldCover class",
            "bigearthnet": "BigEarthNet-S2 example patches from bigearthnet-common 2.8.0 (CDLA-Permissive-1.0)",
        },
        "classes": worldcereal_stats(args.worldcereal, args.world),
        "spatial": bigearthnet_stats(args.bigearthnet),
    }
    write_json(args.out, table)
    print(f"wrote {args.out}")
    for name, c in table["classes"].items():
        print(f"{name:20s} n={c['n']:3d} NDVI={c['ndvi_mean']:.2f} NDWI={c['ndwi_mean']:.2f} "
              + " ".join(f"{v:.0f}" for v in c["band_mean"].values()))
    print("acf", table["spatial"]["mean_acf_length_px"])


if __name__ == "__main__":
    main()
