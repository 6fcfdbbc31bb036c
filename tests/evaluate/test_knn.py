import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.evaluate.knn import knn_predict, knn_predict_many

from .synthetic import blobs


def test_knn_classifies_blobs_for_every_k():
    rng = np.random.default_rng(0)
    x, y = blobs(300, 4, 16, rng)
    out = knn_predict(x[:200], y[:200], x[200:], ks=[1, 5, 20], n_classes=4)
    assert set(out) == {1, 5, 20}
    for scores in out.values():
        assert scores.shape == (100, 4)
        np.testing.assert_allclose(scores.sum(1), 1.0)
        assert (scores.argmax(1) == y[200:]).mean() > 0.95


def test_weighted_vote_and_regression_mean_by_hand():
    train = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    query = np.array([[1.0, 0.2]])
    sims = (train / np.linalg.norm(train, axis=1, keepdims=True)) @ (query[0] / np.linalg.norm(query[0]))
    w = np.exp(sims / 0.1)
    values = np.array([1.0, 2.0, 4.0])
    out = knn_predict(train, values, query, ks=[3], temperature=0.1, task_type="regression")
    assert out[3][0] == pytest.approx((w * values).sum() / w.sum())
    cls = knn_predict(train, np.array([0, 1, 1]), query, ks=[3], temperature=0.1, n_classes=2)[3]
    assert cls[0, 0] == pytest.approx(w[0] / w.sum())


def test_knn_rejects_mismatched_inputs():
    x = np.zeros((5, 3))
    with pytest.raises(InputError, match="labels"):
        knn_predict(x, np.zeros(4), x)
    with pytest.raises(InputError, match="dimensions"):
        knn_predict(x, np.zeros(5), np.zeros((2, 4)))


def test_many_training_sets_in_one_search_match_one_search_each():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((260, 16)).astype(np.float32)
    labels = rng.integers(0, 4, 200)
    dist = rng.dirichlet(np.ones(3), 200)
    subsets = [np.arange(200), np.arange(0, 200, 2), np.arange(150, 200), np.array([7, 3])]
    for targets, kind in ((labels, "classification"), (dist, "distribution")):
        many = knn_predict_many(x[:200], targets, x[200:], subsets, ks=[1, 5], task_type=kind, n_classes=4)
        assert len(many) == len(subsets)
        for rows, got in zip(subsets, many):
            one = knn_predict(x[:200][rows], targets[rows], x[200:], ks=[1, 5], task_type=kind, n_classes=4)
            for k in (1, 5):  # k larger than a subset uses all of it
                np.testing.assert_allclose(got[k], one[k], rtol=1e-5, atol=1e-7)  # float32 products
    with pytest.raises(InputError, match="region\\) is empty"):
        knn_predict_many(x[:200], labels, x[200:], [np.arange(0)], n_classes=4)
