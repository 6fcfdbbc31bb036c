import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.evaluate.linear import fit_linear_probe

from .synthetic import blobs


def test_logistic_probe_selects_c_on_val_and_refits():
    rng = np.random.default_rng(0)
    x, y = blobs(260, 3, 12, rng, spread=2.0)
    probe = fit_linear_probe(x[:150], y[:150], x[150:200], y[150:200], task_type="classification", n_classes=3,
                             grid=[1e-4, 1e-2, 1.0])
    assert set(probe.selection) == {"0.0001", "0.01", "1"}
    assert probe.param == float(max(probe.selection, key=lambda k: (*probe.selection[k], -float(k))))
    acc = (probe.scores(x[200:]).argmax(1) == y[200:]).mean()
    assert acc > 0.9


def test_probe_maps_unseen_classes_and_single_class_training():
    rng = np.random.default_rng(1)
    x, y = blobs(60, 2, 5, rng)
    probe = fit_linear_probe(x, y + 1, None, None, task_type="classification", n_classes=4, fixed_param=1.0)
    s = probe.scores(x)
    assert s.shape == (60, 4) and np.allclose(s[:, [0, 3]], 0)
    const = fit_linear_probe(x, np.full(60, 2), None, None, task_type="classification", n_classes=4)
    assert np.all(const.scores(x).argmax(1) == 2)


def test_ridge_and_multilabel():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8))
    t = x @ rng.normal(size=8) + rng.normal(0, 0.1, 200)
    probe = fit_linear_probe(x[:120], t[:120], x[120:160], t[120:160], task_type="regression")
    assert probe.param_name == "alpha"
    pred = probe.scores(x[160:])
    assert 1 - ((pred - t[160:]) ** 2).sum() / ((t[160:] - t[160:].mean()) ** 2).sum() > 0.95
    ml = (x[:, :2] > 0).astype(float)
    probe = fit_linear_probe(x[:150], ml[:150], x[150:], ml[150:], task_type="multilabel", n_classes=2)
    assert probe.scores(x).shape == (200, 2)
    assert ((probe.scores(x) > 0.5) == (ml > 0.5)).mean() > 0.9


def test_probe_rejects_count_mismatch():
    with pytest.raises(InputError, match="feature rows but"):
        fit_linear_probe(np.zeros((5, 2)), np.zeros(4), None, None, task_type="classification", n_classes=2)


def test_many_classes_few_samples_fit_without_scikit_learn_warnings():
    """A one-continent head of a 24-class task sees fewer samples than twice its classes: still a classifier."""
    import warnings

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), np.arange(30) % 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe = fit_linear_probe(x, y, None, None, task_type="classification", n_classes=24, fixed_param=1.0)
    assert probe.scores(x).shape == (30, 24) and (probe.scores(x).argmax(1) < 20).all()
