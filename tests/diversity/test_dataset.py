import numpy as np
import pytest
import scipy.stats

from geodiv import geo
from geodiv.bands import S2_BANDS, SATMAE_BANDS, band_indices
from geodiv.data.normalize import satmae_normalize
from geodiv.data.shard_writer import write_shards
from geodiv.diversity.dataset import MEASURES, dataset_diversity, format_diversity

CONTINENT = ["Europe", "Europe", "Africa", "Asia", None, "Europe", "Africa"]
LANDCOVER = ["Croplands", "Grasslands", "Barren", "Barren", "Barren", "Croplands", "Savannas"]
LAT = [48.0, 52.0, 23.0, 40.0, 10.0, 45.0, -5.0]
LON = [2.0, 5.5, 12.0, 90.0, -30.0, 10.0, 25.0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("ds")
    images = rng.integers(0, 8000, size=(7, 13, 16, 16), dtype=np.uint16)
    images[3] = 1500  # a flat sample
    samples = [
        (
            f"k{i}",
            images[i],
            {
                "lat": LAT[i],
                "lon": LON[i],
                "continent": CONTINENT[i],
                "biome": "Deserts & Xeric Shrublands",
                "landcover": LANDCOVER[i],
                "climate": "BWh",
            },
        )
        for i in range(7)
    ]
    write_shards(samples, root, shard_size=3, bands=S2_BANDS)
    return root, images


def test_dataset_diversity_numbers(built):
    root, images = built
    res = dataset_diversity(root, batch_size=4)  # batches that straddle shards
    assert res["n_samples"] == 7
    counts = [3, 2, 1]  # Europe, Africa, Asia; the ocean sample has no continent
    h = scipy.stats.entropy(counts, base=2)
    assert res["continent_entropy"] == pytest.approx(h)
    assert res["continent_entropy_normalized"] == pytest.approx(h / np.log2(len(geo.CONTINENTS)))
    assert res["continent_effective_number"] == pytest.approx(2**h)
    assert res["counts"]["continent"]["(missing)"] == 1
    assert res["landcover_entropy"] == pytest.approx(scipy.stats.entropy([2, 1, 3, 1], base=2))
    assert res["biome_entropy"] == 0.0 and res["climate_entropy"] == 0.0
    # Spectral entropy on the 10 bands the model sees, from its own inputs, with a plain loop.
    keep = band_indices(S2_BANDS, SATMAE_BANDS)
    per_sample = [
        np.mean(
            [
                scipy.stats.entropy(np.histogram(v, 256, (0, 1))[0], base=2)
                for v in satmae_normalize(im[keep], SATMAE_BANDS)
            ]
        )
        for im in images
    ]
    assert res["spectral_entropy"] == pytest.approx(np.mean(per_sample))
    assert res["distributions"]["spectral_entropy"]["min"] == 0.0  # the flat sample
    assert res["settings"]["spectral_bands"] == list(SATMAE_BANDS)
    land = scipy.stats.entropy(geo.landcover_fractions(np.array(LAT), np.array(LON)), base=2, axis=-1)
    assert res["landscape_entropy"] == pytest.approx(land.mean(), abs=1e-6)
    assert all(res[m] is not None for m in MEASURES)
    assert "landscape entropy" in format_diversity(res)


def test_dataset_diversity_is_independent_of_batching(built):
    root, _ = built
    a = dataset_diversity(root, batch_size=1)
    b = dataset_diversity(root, batch_size=64)
    assert a["spectral_entropy"] == pytest.approx(b["spectral_entropy"], abs=1e-12)
    assert a["spectral_entropy_joint"] == pytest.approx(b["spectral_entropy_joint"], abs=1e-12)
