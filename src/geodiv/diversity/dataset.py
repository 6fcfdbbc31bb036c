"""Every diversity measure of a built dataset, read in one streaming pass over its shards.

``dataset_diversity(dir)`` reads samples with ``geodiv.data.iter_samples`` (one chunk of images in memory at a
time) and returns one JSON-able dict: categorical diversity over continent, biome, land cover and climate
(entropy in bits, normalised by the vocabulary size, effective number), the per-sample spectral entropy
(per band and joint; mean and distribution) and the landscape entropy of the sample locations.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from geodiv.bands import SATMAE_BANDS, band_indices, canonical_band
from geodiv.diversity.categorical import categorical_diversity
from geodiv.diversity.landscape import DEFAULT_WINDOW, landscape_entropy, summarize_landscape
from geodiv.diversity.spectral import spectral_entropy, summarize
from geodiv.errors import DataError
from geodiv.progress import progress

#: Metadata fields with categorical diversity, in report order.
CATEGORICAL_FIELDS: tuple[str, ...] = ("continent", "biome", "landcover", "climate")
#: The headline measures (one number per dataset) that the study reports and correlates with performance, in the
#: order its tables show them (the columns of diversity.csv).
HEADLINE_MEASURES: tuple[str, ...] = (
    "continent_entropy",
    "biome_entropy",
    "landcover_entropy",
    "climate_entropy",
    "landscape_entropy",
    "spectral_entropy",
)
#: Every one-number measure of ``dataset_diversity``: the headline ones and the joint spectral variant.
MEASURES: tuple[str, ...] = (*HEADLINE_MEASURES, "spectral_entropy_joint")


def vocabulary_sizes() -> dict[str, int]:
    """Number of possible groups per categorical field (the denominator of the normalised entropies)."""
    from geodiv import geo

    return {
        "continent": len(geo.CONTINENTS),
        "biome": len(geo.BIOMES),
        "landcover": len(geo.IGBP_CLASSES),
        "climate": len(geo.KOPPEN_ZONES),
    }


def spectral_bands(dataset_bands: list[str]) -> list[str]:
    """The bands spectral entropy is measured on: the model's (SatMAE's 10) that the dataset has, else all."""
    have = [canonical_band(b) for b in dataset_bands]
    kept = [b for b in SATMAE_BANDS if b in have]
    return kept or have


def dataset_diversity(
    root: str | os.PathLike[str],
    *,
    bins: int = 256,
    joint_bins: int = 4,
    window: int = DEFAULT_WINDOW,
    batch_size: int = 256,
    verify: bool = True,
) -> dict:
    """Diversity measures of the dataset at ``root`` (a folder with ``manifest.json``). See docs/diversity.md.

    Top-level numbers: ``n_samples``, ``<field>_entropy`` / ``_normalized`` / ``_effective_number`` for continent,
    biome, landcover and climate, ``spectral_entropy`` (mean per-sample, per-band), ``spectral_entropy_joint``,
    ``landscape_entropy`` (mean over sample locations; None if samples carry no lat/lon). ``distributions`` holds
    quantiles and histograms of the per-sample values, ``counts`` the group counts, ``settings`` the parameters.
    """
    from geodiv.data.shard_reader import read_manifest

    manifest = read_manifest(root)
    bands = list(manifest["bands"])
    keep = spectral_bands(bands)
    keep_idx = band_indices(bands, keep)
    n, counters, spectral_values, joint_values, lats, lons = _scan(
        root, manifest, keep, keep_idx, bins=bins, joint_bins=joint_bins, batch_size=batch_size, verify=verify
    )
    result: dict = {"n_samples": n}
    sizes = vocabulary_sizes()
    counts: dict[str, dict] = {}
    for f in CATEGORICAL_FIELDS:
        div = categorical_diversity(counters[f], n_possible=sizes[f])
        result[f"{f}_entropy"] = div["entropy"]
        result[f"{f}_entropy_normalized"] = div["normalized"]
        result[f"{f}_effective_number"] = div["effective_number"]
        counts[f] = {**div["counts"], **({"(missing)": div["n_missing"]} if div["n_missing"] else {})}
    result["spectral_entropy"] = float(spectral_values.mean())
    result["spectral_entropy_joint"] = float(joint_values.mean())
    landscape = None
    if len(lats) == n:
        landscape = summarize_landscape(
            landscape_entropy(np.array(lats), np.array(lons), window=window), window
        )
    result["landscape_entropy"] = landscape["landscape_entropy"] if landscape else None
    result["distributions"] = {
        "spectral_entropy": summarize(spectral_values, hist_range=(0.0, float(np.log2(bins))), hist_bins=32),
        "spectral_entropy_joint": summarize(joint_values, hist_bins=32),
        "landscape_entropy": landscape,
    }
    result["counts"] = counts
    result["settings"] = {
        "spectral_values": "SatMAE 8-bit levels (model input x 255)",
        "spectral_bands": keep,
        "bins": bins,
        "joint_bins": joint_bins,
        "window": window,
        "entropy_unit": "bits",
        "normalized_by": {f: f"log2({sizes[f]})" for f in CATEGORICAL_FIELDS},
        "landscape_note": None if landscape else "samples carry no lat/lon: landscape entropy not measured",
    }
    return result


def _scan(
    root: str | os.PathLike[str], manifest: dict, keep: list[str], keep_idx: list[int], *, bins: int, joint_bins: int,
    batch_size: int, verify: bool,
) -> tuple[int, dict[str, Counter], np.ndarray, np.ndarray, list[float], list[float]]:
    """One pass over the samples: their count, categorical counters, per-sample spectral entropies (per band and
    joint), and the sample locations that have lat/lon."""
    from geodiv.data.shard_reader import iter_samples

    counters: dict[str, Counter] = {f: Counter() for f in CATEGORICAL_FIELDS}
    spectral: list[np.ndarray] = []
    joint: list[np.ndarray] = []
    lats: list[float] = []
    lons: list[float] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            images = np.stack(batch)
            spectral.append(spectral_entropy(images, bins, bands=keep))
            joint.append(spectral_entropy(images, bins, joint=True, bands=keep, joint_bins=joint_bins))
            batch.clear()

    n = 0
    bar = progress(total=manifest["n_samples"], desc="diversity", unit="sample")
    for _key, image, meta in iter_samples(root, verify=verify):
        for f in CATEGORICAL_FIELDS:
            counters[f][meta.get(f)] += 1
        if meta.get("lat") is not None and meta.get("lon") is not None:
            lats.append(float(meta["lat"]))
            lons.append(float(meta["lon"]))
        batch.append(image[keep_idx])
        if len(batch) == batch_size:
            flush()
        n += 1
        bar.update(1)
    flush()
    bar.close()
    if n == 0:
        raise DataError(f"dataset {manifest['root']} has no samples; nothing to measure")

    return n, counters, np.concatenate(spectral), np.concatenate(joint), lats, lons


def format_diversity(result: dict) -> str:
    """A short human-readable table of ``dataset_diversity``'s headline numbers."""
    lines = [f"{'samples':24s} {result['n_samples']}"]
    for f in CATEGORICAL_FIELDS:
        lines.append(
            f"{f + ' entropy':24s} {result[f + '_entropy']:.3f} bits  (normalised "
            f"{result[f + '_entropy_normalized']:.3f}, effective groups {result[f + '_effective_number']:.2f})"
        )
    dist = result["distributions"]["spectral_entropy"]
    q = dist["quantiles"]
    lines.append(
        f"{'spectral entropy':24s} {result['spectral_entropy']:.3f} bits/band  "
        f"(per-sample median {q['q50']:.3f}, 5-95% {q['q05']:.3f}-{q['q95']:.3f})"
    )
    lines.append(f"{'joint spectral entropy':24s} {result['spectral_entropy_joint']:.3f} bits")
    land = result["landscape_entropy"]
    lines.append(
        f"{'landscape entropy':24s} " + (f"{land:.3f} bits" if land is not None else "- (no lat/lon)")
    )
    return "\n".join(lines)
