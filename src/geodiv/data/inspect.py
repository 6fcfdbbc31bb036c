"""``geodiv inspect DIR``: composition counts, a world map of sample locations and a grid of example images."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import atomic_path
from geodiv.data.shard_format import COUNT_FIELDS
from geodiv.data.shard_reader import iter_samples, read_manifest

#: One fixed colour per continent (ColorBrewer Dark2), shared by these maps and every figure of the study report,
#: so that maps of different datasets, and the report, are comparable.
CONTINENT_COLOURS: dict[str, str] = {
    "Africa": "#d95f02", "Antarctica": "#999999", "Asia": "#e7298a", "Europe": "#1b9e77",
    "North America": "#7570b3", "Oceania": "#66a61e", "South America": "#e6ab02",
}
RGB_BANDS = ("B4", "B3", "B2")


def inspect_dataset(root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                    n_examples: int = 16, max_points: int = 200_000) -> dict[str, Any]:
    """Counts per continent/biome/land cover/climate (from the manifest), plus ``map.png`` and ``examples.png``
    in ``out`` (default ``DIR/inspect``). Reads metadata of up to ``max_points`` samples for the map."""
    manifest = read_manifest(root)
    out = Path(out) if out is not None else Path(manifest["root"]) / "inspect"
    lat, lon, continent = [], [], []
    for _key, _, meta in itertools.islice(iter_samples(root, verify=False, decode_image=False), max_points):
        lat.append(meta["lat"])
        lon.append(meta["lon"])
        continent.append(meta.get("continent"))
    images = [image for _, image, _ in itertools.islice(iter_samples(root, verify=False), n_examples)]
    map_png = write_map(np.asarray(lat), np.asarray(lon), continent, out / "map.png", manifest.get("name", ""))
    grid_png = write_grid(images, manifest["bands"], out / "examples.png")
    return {
        "root": manifest["root"],
        "name": manifest.get("name"),
        "n_samples": manifest["n_samples"],
        "n_shards": len(manifest["shards"]),
        "bands": manifest["bands"],
        "size": manifest["size"],
        "counts": manifest.get("counts", {}),
        "skipped": (manifest.get("skipped") or {}).get("count", 0),
        "map": str(map_png),
        "examples": str(grid_png) if grid_png else None,
    }


def format_inspection(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['root']}: {summary['n_samples']} samples in {summary['n_shards']} shards, "
        f"{len(summary['bands'])} bands ({', '.join(summary['bands'])}), {summary['size']} px",
    ]
    n = max(summary["n_samples"], 1)
    for field in COUNT_FIELDS:
        counts = summary["counts"].get(field) or {}
        if not counts:
            continue
        lines.append(f"{field}:")
        for name, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {name:56s} {c:8d}  {100 * c / n:5.1f} %")
    if summary.get("skipped"):
        lines.append(f"skipped while building: {summary['skipped']}")
    lines.append(f"map: {summary['map']}")
    if summary.get("examples"):
        lines.append(f"examples: {summary['examples']}")
    return "\n".join(lines)


def _outlines():
    """Continent polygons from geodiv.geo's compact layer, if it ships them (else None: plain scatter)."""
    try:
        from geodiv.geo.regions import _polygons

        return _polygons()[0]
    except Exception:  # noqa: BLE001 - the map is still useful without outlines
        return None


def write_map(lat: np.ndarray, lon: np.ndarray, continent: list[Any], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shapely

    fig, ax = plt.subplots(figsize=(12, 6), dpi=100)
    geoms = _outlines()
    if geoms is not None:
        for g in geoms:
            for poly in getattr(g, "geoms", [g]):
                for ring in [poly.exterior, *poly.interiors] if isinstance(poly, shapely.Polygon) else []:
                    x, y = ring.xy
                    ax.plot(x, y, color="#888888", lw=0.4, zorder=1)
    names = np.array([c if c is not None else "unknown" for c in continent], dtype=object)
    for name in sorted(set(names.tolist())):
        sel = names == name
        ax.scatter(lon[sel], lat[sel], s=2 if lat.size > 2000 else 8, color=CONTINENT_COLOURS.get(name, "#333333"),
                   label=f"{name} ({int(sel.sum())})", zorder=2, linewidths=0)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"{title} sample locations (n={lat.size})".strip())
    if lat.size:
        ax.legend(loc="lower left", fontsize=8, markerscale=3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    return path


def rgb_preview(image: np.ndarray, bands: list[str]) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: B4/B3/B2 (or the first bands), 2-98 percentile stretch per image."""
    idx = [bands.index(b) for b in RGB_BANDS] if all(b in bands for b in RGB_BANDS) else [0, 0, 0]
    rgb = image[idx].astype(np.float32).transpose(1, 2, 0)
    lo, hi = np.percentile(rgb, 2), np.percentile(rgb, 98)
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)


def write_grid(images: list[np.ndarray], bands: list[str], path: Path) -> Path | None:
    if not images:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), images):
        ax.imshow(rgb_preview(img, bands))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    return path
