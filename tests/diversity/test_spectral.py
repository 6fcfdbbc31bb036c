import numpy as np
import pytest
import scipy.stats
import torch

from geodiv.bands import S2_BANDS, SATMAE_BANDS
from geodiv.data.normalize import satmae_normalize
from geodiv.diversity.spectral import band_histograms, quantize, spectral_entropy, summarize
from geodiv.errors import InputError


def _reference(levels: np.ndarray, bins: int = 256) -> np.ndarray:
    """Straightforward per-sample, per-band np.histogram + scipy.stats.entropy on values in [0, 1]."""
    values = levels.astype(np.float64) / 255.0
    return np.array(
        [
            np.mean(
                [
                    scipy.stats.entropy(np.histogram(s[c], bins=bins, range=(0, 1))[0], base=2)
                    for c in range(len(s))
                ]
            )
            for s in values
        ]
    )


def test_known_distributions():
    uniform = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    constant = np.full((1, 3, 8, 8), 17, dtype=np.uint8)
    halves = np.zeros((1, 2, 8, 8), dtype=np.uint8)
    halves[:, :, :4] = 200
    assert spectral_entropy(uniform)[0] == pytest.approx(8.0)
    assert spectral_entropy(constant)[0] == 0.0
    assert spectral_entropy(halves)[0] == pytest.approx(1.0)
    # Mean over bands: one uniform band and one constant band give 4 bits.
    mixed = np.concatenate([uniform, np.zeros_like(uniform)], axis=1)
    assert spectral_entropy(mixed)[0] == pytest.approx(4.0)
    np.testing.assert_allclose(spectral_entropy(mixed, per_band=True)[0], [8.0, 0.0])


def test_batched_equals_per_sample_reference_on_random_data():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, size=(30, 5, 16, 16), dtype=np.uint8)
    levels[:10] //= 37  # low-entropy samples too
    ours = spectral_entropy(levels, chunk_size=7)  # chunk boundaries inside the batch
    np.testing.assert_allclose(ours, _reference(levels), rtol=1e-12)
    # Same values from normalised floats (the model inputs) and from a torch tensor.
    np.testing.assert_allclose(spectral_entropy(levels.astype(np.float32) / 255), ours, rtol=1e-12)
    np.testing.assert_allclose(spectral_entropy(torch.from_numpy(levels)), ours, rtol=1e-12)


def test_raw_reflectance_uses_satmae_levels():
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 9000, size=(4, len(SATMAE_BANDS), 12, 12), dtype=np.uint16)
    model_inputs = np.stack([satmae_normalize(x, SATMAE_BANDS) for x in raw])
    expected = _reference(np.rint(model_inputs * 255).astype(np.uint8))
    np.testing.assert_allclose(spectral_entropy(raw, bands=SATMAE_BANDS), expected, rtol=1e-12)
    np.testing.assert_allclose(spectral_entropy(model_inputs), expected, rtol=1e-12)
    # Fewer bins: the uint8 path and the fused raw path agree.
    np.testing.assert_allclose(
        spectral_entropy(raw, 64, bands=SATMAE_BANDS),
        spectral_entropy(np.rint(model_inputs * 255).astype(np.uint8), 64),
        rtol=1e-12,
    )


def test_raw_reflectance_without_band_names_is_refused():
    with pytest.raises(InputError, match="band names"):
        spectral_entropy(np.zeros((1, 13, 4, 4), dtype=np.uint16))
    with pytest.raises(InputError, match="13 bands"):
        spectral_entropy(np.zeros((1, 13, 4, 4), dtype=np.uint16), bands=SATMAE_BANDS)
    assert spectral_entropy(np.zeros((1, 13, 4, 4), dtype=np.uint16), bands=S2_BANDS).shape == (1,)


def test_band_histograms_count_every_pixel_per_band():
    rng = np.random.default_rng(2)
    levels = rng.integers(0, 256, size=(3, 4, 8, 8), dtype=np.uint8)
    hist = band_histograms(levels)
    assert hist.shape == (3, 4, 256) and (hist.sum(axis=-1) == 64).all()
    np.testing.assert_array_equal(hist[2, 1], np.bincount(levels[2, 1].ravel(), minlength=256))


def test_float_quantisation_matches_numpy_histogram_edges():
    v = np.array([0.0, 0.2, 0.5, 0.999, 1.0, -0.3, 1.7])
    q = quantize(v, bins=4)
    hist = np.histogram(np.clip(v, 0, 1), bins=4, range=(0, 1))[0]
    np.testing.assert_array_equal(np.bincount(q, minlength=4), hist)


def test_joint_entropy_counts_distinct_pixel_vectors():
    img = np.zeros((1, 2, 4, 4), dtype=np.uint8)
    # Each band alone is two-level (1 bit), but jointly there are four equally common vectors (2 bits).
    img[0, 0, :2] = 255
    img[0, 1, :, :2] = 255
    assert spectral_entropy(img)[0] == pytest.approx(1.0)
    assert spectral_entropy(img, joint=True)[0] == pytest.approx(2.0)
    # Perfectly correlated bands: the joint distribution has only two vectors.
    img[0, 1] = img[0, 0]
    assert spectral_entropy(img, joint=True)[0] == pytest.approx(1.0)
    # Levels inside one of joint_bins=4 coarse bins count as the same vector.
    assert spectral_entropy(np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8), joint=True)[0] == 0.0


def test_joint_entropy_matches_a_reference_on_random_data():
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 256, size=(5, 3, 8, 8), dtype=np.uint8)
    ours = spectral_entropy(levels, joint=True, joint_bins=8)
    for i in range(5):
        vectors = (levels[i] // 32).reshape(3, -1).T
        _, counts = np.unique(vectors, axis=0, return_counts=True)
        assert ours[i] == pytest.approx(scipy.stats.entropy(counts, base=2))


def test_bad_inputs_are_refused():
    with pytest.raises(InputError):
        spectral_entropy(np.zeros((4, 4)))
    with pytest.raises(InputError, match="NaN"):
        spectral_entropy(np.full((1, 1, 2, 2), np.nan))
    with pytest.raises(InputError, match="divide 256"):
        spectral_entropy(np.zeros((1, 1, 2, 2), np.uint8), bins=100)


def test_summarize_reports_mean_quantiles_and_histogram():
    s = summarize(np.arange(101.0), hist_range=(0, 100), hist_bins=10)
    assert s["mean"] == 50.0 and s["quantiles"]["q50"] == 50.0 and s["quantiles"]["q05"] == 5.0
    assert sum(s["histogram"]["counts"]) == 101 and len(s["histogram"]["edges"]) == 11
