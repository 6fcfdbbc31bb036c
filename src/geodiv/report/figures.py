"""The report's figures, each a function from tables to a matplotlib Figure (saved by the caller).

Figures use the non-interactive Agg backend, fixed sizes and explicit colours so that reruns produce the same
images for the same numbers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from geodiv.data.inspect import CONTINENT_COLOURS  # noqa: E402  (one palette: dataset maps and the report)
from geodiv.diversity.correlate import enough_defined  # noqa: E402


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes and close it (figures are not kept alive between report sections)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def region_heatmap(matrix: pd.DataFrame, *, title: str, metric: str) -> Figure:
    """Pretraining dataset (rows) x evaluation region (columns), values annotated; the best of each column boxed."""
    values = matrix.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 1.05 * matrix.shape[1], 0.9 + 0.5 * matrix.shape[0]))
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    im = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-9, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=35, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index])
    ax.set_xlabel("evaluation region (test subset)")
    ax.set_ylabel("pretraining dataset")
    mid = (vmin + vmax) / 2
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if np.isfinite(v) and v > mid else "white")
    for j in range(values.shape[1]):
        col = values[:, j]
        if np.isfinite(col).any():
            i = int(np.nanargmax(col))
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    fig.colorbar(im, ax=ax, label=metric, shrink=0.8)
    ax.set_title(title)
    return fig


def correlation_figure(
    diversity: pd.DataFrame,
    performance: pd.Series,
    measures: Sequence[str],
    stats: Mapping[str, Mapping[str, float]],
    *,
    ylabel: str,
    seed: int = 0,
) -> Figure:
    """One panel per diversity measure: datasets as points, least-squares fit with a bootstrap 95% band (none when
    fewer than 95% of the resamples vary x, as for the correlation's interval),
    Spearman rho and p in the panel title."""
    n = len(measures)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.5 * rows), squeeze=False)
    rng = np.random.default_rng(seed)
    names = [str(i) for i in performance.index]
    for k, measure in enumerate(measures):
        ax = axes[k // cols][k % cols]
        x = diversity.loc[performance.index, measure].to_numpy(dtype=float)
        y = performance.to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        colours = [CONTINENT_COLOURS.get(_region_of(nm), "#444444") for nm in names]
        ax.scatter(x[ok], y[ok], c=[c for c, o in zip(colours, ok) if o], s=36, zorder=3, edgecolor="k", lw=0.4)
        for xi, yi, nm, o in zip(x, y, names, ok):
            if o:
                ax.annotate(nm, (xi, yi), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
        if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
            _fit_with_band(ax, x[ok], y[ok], rng)
        s = stats.get(measure, {})
        rho, p = s.get("spearman_rho", math.nan), s.get("spearman_p", math.nan)
        ax.set_title(f"{measure}\nSpearman ρ = {rho:.2f}, p = {p:.3g}", fontsize=9)
        ax.set_xlabel(measure)
        ax.set_ylabel(ylabel)
        ax.ticklabel_format(useOffset=False, axis="both")
        ax.grid(alpha=0.3)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return fig


def _fit_with_band(ax, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 500) -> None:
    grid = np.linspace(x.min(), x.max(), 50)
    slope, intercept = np.polyfit(x, y, 1)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        if np.ptp(x[idx]) == 0:
            continue
        b1, b0 = np.polyfit(x[idx], y[idx], 1)
        boots.append(b0 + b1 * grid)
    ax.plot(grid, intercept + slope * grid, color="k", lw=1)
    if enough_defined(len(boots), n_boot):  # as for the correlation's interval (geodiv.diversity.correlate)
        lo, hi = np.percentile(np.array(boots), [2.5, 97.5], axis=0)
        ax.fill_between(grid, lo, hi, color="k", alpha=0.12, lw=0)


def _region_of(dataset_name: str) -> str:
    for continent in CONTINENT_COLOURS:
        if continent.lower().replace(" ", "") in dataset_name.lower().replace("-", "").replace("_", "").replace(" ", ""):
            return continent
    return ""


def sample_maps(points: Mapping[str, tuple[np.ndarray, np.ndarray, Sequence[str | None]]]) -> Figure:
    """Small multiples: each dataset's sample locations on a world map, coloured by continent."""
    n = len(points)
    cols = min(3, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.6 * rows), squeeze=False)
    background = _land_background()
    for k, (name, (lat, lon, cont)) in enumerate(points.items()):
        ax = axes[k // cols][k % cols]
        if background is not None:
            ax.imshow(background, extent=(-180, 180, -90, 90), cmap="Greys", vmin=0, vmax=3, origin="upper")
        colours = [CONTINENT_COLOURS.get(str(c), "#444444") for c in cont]
        ax.scatter(lon, lat, s=3, c=colours, lw=0)
        ax.set_xlim(-180, 180)
        ax.set_ylim(-60, 85)
        ax.set_title(f"{name} (n={len(lat)})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return fig


def _land_background() -> np.ndarray | None:
    """A coarse land mask (1 = land) from geodiv.geo's land-cover layer, or None if unavailable."""
    try:
        from geodiv import geo

        lat = np.linspace(89.5, -89.5, 180)
        lon = np.linspace(-179.5, 179.5, 360)
        glon, glat = np.meshgrid(lon, lat)
        codes = np.asarray(geo.landcover_of(glat.ravel(), glon.ravel())).reshape(glat.shape)
        return (codes != 0).astype(float)
    except Exception:  # the map is decoration; a missing layer must not break the report
        return None


def paper_comparison_figure(ours: pd.Series, published: pd.Series, *, rho: float, p: float, ylabel: str) -> Figure:
    """Per-dataset mean performance of this study against the published one, with the rank correlation."""
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    ax.scatter(published.to_numpy(float), ours.to_numpy(float), s=40, edgecolor="k", lw=0.4, zorder=3,
               c=[CONTINENT_COLOURS.get(_region_of(str(i)), "#444444") for i in ours.index])
    for name, xv, yv in zip(ours.index, published.to_numpy(float), ours.to_numpy(float)):
        ax.annotate(str(name), (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("published mean (linear probing)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"this study vs. the paper: Spearman ρ = {rho:.2f} (p = {p:.2g})", fontsize=9)
    ax.grid(alpha=0.3)
    return fig
