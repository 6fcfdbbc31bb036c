import numpy as np
import pytest
import torch

from geodiv.bands import S2_BANDS, SATMAE_BANDS, SATMAE_MEAN, SATMAE_STD
from geodiv.data.normalize import Normalizer, satmae_normalize, zscore
from geodiv.errors import ConfigError


def _stat(band):
    i = S2_BANDS.index(band)
    return SATMAE_MEAN[i], SATMAE_STD[i]


def test_satmae_formula_at_known_points():
    m, s = _stat("B4")
    x = np.array([[[0, m, m + 2 * s, 60000]]]).round().astype(np.uint16)
    y = satmae_normalize(x, ["B4"])[0, 0]
    lo = m - 2 * s
    # hand-computed: ((x - lo) / (4 s) * 255) clipped, truncated to an integer, / 255
    want = [np.floor(np.clip((v - lo) / (4 * s) * 255, 0, 255)) / 255 for v in x[0, 0].astype(float)]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, atol=1e-7)
    assert y[-1] == 1.0  # clipped
    assert y[0] == pytest.approx(np.floor(2 * s / (4 * s) * 255 - m / (4 * s) * 255) / 255)  # 0 is above mean-2std
    assert y[1] * 255 == pytest.approx(127)  # the mean maps to 127.5 -> 127: truncation, not rounding


def test_torch_input_gives_torch_output():
    x = torch.randint(0, 5000, (10, 4, 4), dtype=torch.int32)
    y = satmae_normalize(x, SATMAE_BANDS)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_array_equal(y.numpy(), satmae_normalize(x.numpy(), SATMAE_BANDS))


@pytest.mark.parametrize("kind", ["satmae", "zscore", "raw"])
def test_lookup_table_normaliser_equals_direct_formula(kind):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 65535, (10, 24, 24)).astype(np.uint16)
    mean, std = list(rng.uniform(500, 2000, 10)), list(rng.uniform(100, 900, 10))
    norm = Normalizer(kind, SATMAE_BANDS, mean, std)
    direct = {"satmae": lambda: satmae_normalize(x, SATMAE_BANDS), "zscore": lambda: zscore(x, mean, std),
              "raw": lambda: x.astype(np.float32)}[kind]()
    np.testing.assert_array_equal(norm(x), direct)
    # band selection and window applied while normalising
    sub = Normalizer(kind, [SATMAE_BANDS[i] for i in (3, 1)], [mean[3], mean[1]], [std[3], std[1]])
    np.testing.assert_array_equal(sub(x, band_index=[3, 1], window=(2, 5, 10, 7)), direct[[3, 1], 2:12, 5:12])


def test_zscore_values_and_errors():
    x = np.array([[[10, 20]], [[5, 5]]], np.uint16)
    np.testing.assert_allclose(zscore(x, [15, 5], [5, 0]), [[[-1, 1]], [[0, 0]]])
    with pytest.raises(ConfigError, match="mean and std"):
        Normalizer("zscore", ["B2"])
    with pytest.raises(ConfigError, match="unknown normalisation"):
        Normalizer("minmax", ["B2"])
