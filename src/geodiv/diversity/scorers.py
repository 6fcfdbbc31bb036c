"""Per-candidate scores for the data stage's diversity-driven sampling strategy (``register_scorer``).

A scorer takes the candidate catalog (one row per candidate: ``id``, ``lat``, ``lon``, ``source``, ...) and returns
one score per row; the ``diversity`` strategy keeps the top, a quantile band, or a balanced spread of scores.

- ``landscape_entropy``: needs only ``lat``/``lon`` (hundreds of thousands of candidates per second).
- ``spectral_entropy``: needs each candidate's image, made exactly as the build will make it. When the catalog
  carries its dataset config (``catalog.attrs["dataset_config"]``), images come from the data stage's own
  ``samples_for`` (SimEarth simulation, GeoTIFF/fMoW files, foreign shards), so size, bands and simulator settings
  match the build. Without it, only SimEarth rows (``source = "simearth:SEED"``) can be scored, at the default
  96 px and default simulator settings. Cost: one simulation or file read per candidate, i.e. scoring a pool of
  ``pool_factor x n`` candidates costs ``pool_factor`` times the image work of the build itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from geodiv.bands import S2_BANDS, band_indices
from geodiv.data.strategies import register_scorer
from geodiv.diversity.dataset import spectral_bands
from geodiv.diversity.landscape import DEFAULT_WINDOW, landscape_entropy
from geodiv.diversity.spectral import spectral_entropy
from geodiv.errors import ConfigError
from geodiv.progress import progress

#: Images scored together (bounds memory: 64 x 13 x 96 x 96 uint16 = 15 MB).
_BATCH = 64


def spectral_scores(
    keyed_images: Iterable[tuple[str, np.ndarray]], ids: Sequence[str], bands: Sequence[str] = S2_BANDS
) -> np.ndarray:
    """(len(ids),) default spectral entropy (bits) of uint16 images (C, H, W) with channels ``bands``.

    ``keyed_images`` yields ``(id, image)`` in any order; rows that get no image score NaN. Images are consumed
    in batches of ``_BATCH``, so memory stays flat for any number of candidates.
    """
    keep = spectral_bands(list(bands))
    idx = band_indices(list(bands), keep)
    position = {str(k): i for i, k in enumerate(ids)}
    out = np.full(len(position), np.nan)
    keys: list[int] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            out[keys] = spectral_entropy(np.stack(batch), bands=keep)
            keys.clear()
            batch.clear()

    for key, image in keyed_images:
        if str(key) in position:
            keys.append(position[str(key)])
            batch.append(np.asarray(image)[idx])
            if len(batch) == _BATCH:
                flush()
    flush()
    return out


def landscape_entropy_scorer(catalog: Any, window: int = DEFAULT_WINDOW) -> np.ndarray:
    """Scorer ``landscape_entropy``: landscape entropy (bits) around each candidate location."""
    return landscape_entropy(catalog["lat"].to_numpy(), catalog["lon"].to_numpy(), window=window)


def spectral_entropy_scorer(catalog: Any) -> np.ndarray:
    """Scorer ``spectral_entropy``: per-sample spectral entropy of each candidate's image (see module doc)."""
    ids = [str(k) for k in catalog["id"]]
    cfg = getattr(catalog, "attrs", {}).get("dataset_config")
    if cfg is not None:
        from geodiv.data.build import samples_for

        samples = samples_for(cfg, catalog)
        bands = list(cfg.bands)
        keyed = ((s.key, s.image) for s in samples)
    else:
        keyed, bands = _simearth_images(catalog), list(S2_BANDS)
    bar = progress(keyed, total=len(ids), desc="scoring spectral entropy", unit="candidate")
    return spectral_scores(bar, ids, bands)


def _simearth_images(catalog: Any):
    from geodiv import simearth

    sources = {str(s) for s in catalog["source"]}
    if len(sources) != 1 or not next(iter(sources)).startswith("simearth:"):
        raise ConfigError(
            "the spectral_entropy scorer needs the candidates' images: this catalog's rows come from "
            f"{sorted(sources)[:3]}, and it carries no dataset config (catalog.attrs['dataset_config']) to read "
            "them with; score SimEarth catalogs, or use the landscape_entropy scorer (coordinates only)"
        )
    seed = int(next(iter(sources)).split(":", 1)[1])
    lat = catalog["lat"].to_numpy()
    lon = catalog["lon"].to_numpy()
    ids = [str(k) for k in catalog["id"]]
    for key, patch in zip(ids, simearth.simulate_patches(lat, lon, seed)):
        yield key, patch.image


def register_scorers() -> None:
    """Register this stage's scorers with ``geodiv.data``'s ``diversity`` strategy (the CLI and the study call
    it before building datasets; the data stage never imports this one)."""
    register_scorer("landscape_entropy", landscape_entropy_scorer)
    register_scorer("spectral_entropy", spectral_entropy_scorer)
