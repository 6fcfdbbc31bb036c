import numpy as np
import pytest

from geodiv.diversity.embedding import vendi_score
from geodiv.errors import InputError


def test_identical_features_score_one_and_orthogonal_score_n():
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (5, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)
    # Two groups of identical vectors, orthogonal to each other, equally common: two effective samples.
    feats = np.array([[1.0, 0, 0]] * 3 + [[0, 5.0, 0]] * 3)
    assert vendi_score(feats) == pytest.approx(2.0)


def test_small_and_large_gram_give_the_same_score():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 8))
    z = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    eig = np.clip(np.linalg.eigvalsh(z @ z.T / 40), 0, None)
    eig = eig[eig > 1e-15]
    assert vendi_score(feats) == pytest.approx(np.exp(-(eig * np.log(eig)).sum()))
    assert 1.0 < vendi_score(feats) <= 8.0


def test_bad_features_are_refused():
    with pytest.raises(InputError):
        vendi_score(np.zeros((3, 2)))
    with pytest.raises(InputError):
        vendi_score(np.ones(3))
