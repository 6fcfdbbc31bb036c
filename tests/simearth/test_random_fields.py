import numpy as np

from geodiv.simearth.random_fields import _compact, linear_quantile_inplace, smooth_field
from geodiv.simearth.realism import autocorrelation_length


def test_smooth_field_scale_and_variance():
    rng = np.random.default_rng(0)
    fine = smooth_field(rng, (96, 96), 1.0, n=4)
    coarse = smooth_field(rng, (96, 96), 8.0, n=4)
    assert fine.shape == (4, 96, 96) and fine.dtype == np.float32
    assert 0.7 < fine.std() < 1.3
    l_fine = np.mean([autocorrelation_length(f) for f in fine])
    l_coarse = np.mean([autocorrelation_length(f) for f in coarse])
    assert l_coarse > 3 * l_fine
    # Large patches use the direct FFT path.
    big = smooth_field(rng, (200, 150), 4.0)
    assert big.shape == (1, 200, 150)


#: The numpy whose float32 arithmetic linear_quantile_inplace repeats to the bit (2.4, what `make setup` installs).
EXACT_NUMPY = np.lib.NumpyVersion(np.__version__) >= "2.4.0"


def test_fast_quantile_and_compaction_equal_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 500, 9216):
        vals = rng.standard_normal(n).astype(np.float32)
        for q in (0.0, 0.03, 0.5, 0.9, 0.97, 1.0, float(rng.uniform())):
            got = linear_quantile_inplace(vals.copy(), q)
            ref = np.quantile(vals, q)
            assert np.asarray(got).dtype == np.asarray(ref).dtype
            if EXACT_NUMPY:
                assert got == ref
            else:  # an older numpy interpolates float32 in another order (seen: 10 ulp, 8e-7 relative, numpy 2.3.5)
                np.testing.assert_allclose(got, ref, rtol=1e-5)
        key = rng.integers(0, 3 * n, n)
        for got, ref in zip(_compact(key), np.unique(key, return_inverse=True)):
            np.testing.assert_array_equal(got, ref)
