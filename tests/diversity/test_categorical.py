import math
from collections import Counter

import numpy as np
import pytest
import scipy.stats

from geodiv.diversity.categorical import categorical_diversity, shannon_entropy
from geodiv.errors import InputError


def test_entropy_of_known_distributions():
    assert shannon_entropy(np.ones(256)) == pytest.approx(8.0)
    assert shannon_entropy([5, 0, 0]) == 0.0
    assert shannon_entropy([3, 3]) == pytest.approx(1.0)
    assert shannon_entropy([0, 0]) == 0.0  # no observations: no diversity
    assert shannon_entropy([1, 1, 1, 1], base=math.e) == pytest.approx(math.log(4))


def test_entropy_matches_scipy_along_an_axis():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(20, 3, 17))
    ours = shannon_entropy(counts, axis=-1)
    ref = scipy.stats.entropy(counts, base=2, axis=-1)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_entropy_rejects_negative_counts():
    with pytest.raises(InputError):
        shannon_entropy([1, -1])


def test_categorical_diversity_normalised_and_effective_number():
    labels = ["Africa"] * 2 + ["Asia"] * 2 + ["Europe"] * 2 + ["Oceania"] * 2
    div = categorical_diversity(labels, n_possible=7)
    assert div["entropy"] == pytest.approx(2.0)
    assert div["effective_number"] == pytest.approx(4.0)
    assert div["normalized"] == pytest.approx(2.0 / math.log2(7))
    assert div["n_groups"] == 4 and div["n_possible"] == 7 and div["normalized_by"] == "vocabulary"


def test_categorical_diversity_single_group_and_missing_labels():
    div = categorical_diversity(["Europe", "Europe", None])
    assert div["entropy"] == 0.0 and div["effective_number"] == 1.0 and div["normalized"] == 0.0
    assert div["n_missing"] == 1 and div["n_labelled"] == 2


def test_categorical_diversity_accepts_counts_and_matches_labels():
    labels = ["a", "b", "b", "c", "c", "c"]
    assert categorical_diversity(Counter(labels) | {"d": 0}, 5)["entropy"] == pytest.approx(
        categorical_diversity(labels, 5)["entropy"]
    )
    assert categorical_diversity({"a": 1, "b": 2, "c": 3}, 5)["n_groups"] == 3


def test_categorical_diversity_rejects_a_too_small_vocabulary():
    with pytest.raises(InputError, match="n_possible"):
        categorical_diversity(["a", "b", "c"], n_possible=2)
