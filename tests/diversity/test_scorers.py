import numpy as np
import pytest

from geodiv import geo, simearth
from geodiv.bands import S2_BANDS, SATMAE_BANDS, band_indices
from geodiv.data.build import DatasetConfig
from geodiv.data.catalog import make_catalog
from geodiv.data.strategies import DiversityStrategy, get_scorer, select
from geodiv.diversity import landscape_entropy, register_scorers, spectral_entropy
from geodiv.errors import ConfigError


@pytest.fixture(scope="module")
def catalog():
    register_scorers()  # what the CLI and the study do before building
    lat, lon = geo.sample_locations(["Europe", "Africa"], 40, 0)
    return make_catalog(lat, lon, "simearth:0")


def test_landscape_scorer_and_selection_modes(catalog):
    scores = get_scorer("landscape_entropy")(catalog)
    np.testing.assert_array_equal(
        scores, landscape_entropy(catalog["lat"].to_numpy(), catalog["lon"].to_numpy())
    )
    top = select(DiversityStrategy(scorer="landscape_entropy", mode="top"), catalog, 10, seed=0)
    assert scores[top].min() >= np.sort(scores)[-10]
    low = select(
        DiversityStrategy(scorer="landscape_entropy", mode="quantile", quantile=(0.0, 0.25)), catalog, 10, 0
    )
    assert scores[low].max() <= np.sort(scores)[10]
    bal = select(DiversityStrategy(scorer="landscape_entropy", mode="balanced", bins=4), catalog, 12, seed=0)
    assert len(set(bal)) == 12 and scores[bal].std() > 0


def test_spectral_scorer_uses_the_dataset_config(catalog):
    small = catalog.iloc[:4].reset_index(drop=True)
    small.attrs["dataset_config"] = DatasetConfig(n=4, size=16, bands=list(SATMAE_BANDS))
    scores = get_scorer("spectral_entropy")(small)
    images = np.stack(
        [
            p.image
            for p in simearth.simulate_patches(small["lat"].to_numpy(), small["lon"].to_numpy(), 0, size=16)
        ]
    )
    keep = band_indices(S2_BANDS, SATMAE_BANDS)
    np.testing.assert_allclose(scores, spectral_entropy(images[:, keep], bands=SATMAE_BANDS), rtol=1e-12)


def test_spectral_scorer_without_config_simulates_default_simearth_patches(catalog):
    small = catalog.iloc[:2].reset_index(drop=True)
    scores = get_scorer("spectral_entropy")(small)
    patches = list(simearth.simulate_patches(small["lat"].to_numpy(), small["lon"].to_numpy(), 0))
    keep = band_indices(S2_BANDS, SATMAE_BANDS)
    expected = spectral_entropy(np.stack([p.image[keep] for p in patches]), bands=SATMAE_BANDS)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_spectral_scorer_refuses_files_without_a_config(catalog):
    other = catalog.iloc[:2].reset_index(drop=True)
    other["source"] = "/data/a.tif"
    with pytest.raises(ConfigError, match="landscape_entropy"):
        get_scorer("spectral_entropy")(other)
