import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    jaccard_score,
    mean_squared_error,
    r2_score,
)

from geodiv.errors import InputError
from geodiv.evaluate.metrics import bootstrap_weights, compute_metrics, geobench_aggregate


def test_point_values_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    res = compute_metrics("classification", y, p, n_classes=4, n_boot=100)
    assert res["accuracy"].value == pytest.approx(accuracy_score(y, p))
    assert res["macro_f1"].value == pytest.approx(f1_score(y, p, average="macro"))
    assert res["accuracy"].ci_low <= res["accuracy"].value <= res["accuracy"].ci_high
    assert res["accuracy"].n == 200

    t = rng.normal(size=150)
    q = t + rng.normal(0, 0.5, 150)
    res = compute_metrics("regression", t, q, n_boot=0)
    assert res["r2"].value == pytest.approx(r2_score(t, q))
    assert res["rmse"].value == pytest.approx(np.sqrt(mean_squared_error(t, q)))

    truth = (rng.random((120, 5)) < 0.3).astype(float)
    scores = np.round(np.clip(truth * 0.4 + rng.random((120, 5)) * 0.6, 0, 1), 1)  # ties on purpose
    res = compute_metrics("multilabel", truth, scores, n_boot=0)
    assert res["map"].value == pytest.approx(average_precision_score(truth, scores, average="macro"))
    assert res["micro_f1"].value == pytest.approx(f1_score(truth, scores >= 0.5, average="micro"))


def test_segmentation_matches_pixel_metrics_and_ignores_pixels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, (6, 8, 8))
    p = np.where(rng.random((6, 8, 8)) < 0.8, y, rng.integers(0, 3, (6, 8, 8)))
    res = compute_metrics("segmentation", y, p, n_classes=3, n_boot=0)
    assert res["miou"].value == pytest.approx(jaccard_score(y.ravel(), p.ravel(), average="macro"))
    assert res["f1"].value == pytest.approx(f1_score(y.ravel(), p.ravel(), average="macro"))
    y_ign = y.copy()
    y_ign[:, :2] = 255  # ignored pixels do not count, whatever was predicted there
    keep = y_ign != 255
    res = compute_metrics("segmentation", y_ign, p, n_classes=3, n_boot=0)
    assert res["miou"].value == pytest.approx(jaccard_score(y_ign[keep], p[keep], average="macro"))


def test_weighted_metric_equals_metric_of_resampled_set():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 50)
    p = np.where(rng.random(50) < 0.6, y, rng.integers(0, 3, 50))
    idx = rng.integers(0, 50, 50)
    w = np.bincount(idx, minlength=50)[None].astype(float)
    from geodiv.evaluate.metrics import _macro_f1

    assert _macro_f1(y, p, 3)(w)[0] == pytest.approx(f1_score(y[idx], p[idx], average="macro"))
    counts = bootstrap_weights(50, 7, np.random.default_rng(0))
    assert counts.shape == (7, 50) and np.all(counts.sum(1) == 50)


def test_bootstrap_is_seeded_and_empty_sets_are_null():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    p = np.where(rng.random(80) < 0.7, y, 1 - y)
    a = compute_metrics("classification", y, p, n_classes=2, seed=5, n_boot=200)
    b = compute_metrics("classification", y, p, n_classes=2, seed=5, n_boot=200)
    c = compute_metrics("classification", y, p, n_classes=2, seed=6, n_boot=200)
    assert a == b and a != c
    empty = compute_metrics("classification", y[:0], p[:0], n_classes=2)
    assert empty["accuracy"].value is None and empty["accuracy"].n == 0
    with pytest.raises(InputError, match="labels but"):
        compute_metrics("classification", y, p[:-1], n_classes=2)


def test_geobench_aggregate_normalises_and_takes_iqm():
    rows = []
    # Task A: m1 best (1.0 normalised), m2 worst (0). Task B (rmse, lower is better): m2 best.
    for v1, v2 in [(0.9, 0.5), (0.8, 0.6)]:
        rows += [{"checkpoint": "m1", "task": "A", "metric": "accuracy", "value": v1},
                 {"checkpoint": "m2", "task": "A", "metric": "accuracy", "value": v2}]
    rows += [{"checkpoint": "m1", "task": "B", "metric": "rmse", "value": 3.0},
             {"checkpoint": "m2", "task": "B", "metric": "rmse", "value": 1.0},
             {"checkpoint": "m2", "task": "B", "metric": "rmse", "value": None}]
    agg = geobench_aggregate(rows, n_boot=200, seed=0)
    # m1 normalised: A -> (1.0, 0.75), B -> 0 ; IQM of [0, 0.75, 1.0] (25% trimmed of 3 -> mean of all 3)
    from scipy.stats import trim_mean

    assert agg["m1"].value == pytest.approx(trim_mean([1.0, 0.75, 0.0], 0.25))
    assert agg["m2"].value == pytest.approx(trim_mean([0.0, 0.25, 1.0], 0.25))
    assert agg["m1"].n_tasks == 2 and agg["m2"].n_values == 3
    assert agg["m1"].ci_low <= agg["m1"].value <= agg["m1"].ci_high
    with pytest.raises(InputError):
        geobench_aggregate([])


def test_group_metrics_split_accuracy_into_groups_and_members():
    from geodiv.evaluate.metrics import class_group_ids

    groups = class_group_ids(["a", "b", "c", "d", "e"], {"ab": ["a", "b"], "cd": ["c", "d"]})
    assert groups.tolist() == [0, 0, 1, 1, 2]  # 'e' is a group of its own
    y = np.array([0, 0, 1, 2, 3, 4, 4])
    p = np.array([0, 1, 0, 3, 4, 4, 0])
    r = compute_metrics("classification", y, p, n_classes=5, n_boot=200, class_group=groups,
                        metrics=["accuracy", "group_accuracy", "within_group_accuracy"])
    # right group: samples 0, 1, 2, 3 and 5 (5 of 7); of the grouped samples in the right group (0-3) only 0 is exact
    assert r["group_accuracy"].value == pytest.approx(5 / 7)
    assert r["within_group_accuracy"].value == pytest.approx(1 / 4)
    assert r["accuracy"].value == pytest.approx(2 / 7)
    assert r["within_group_accuracy"].ci_low <= 0.25 <= r["within_group_accuracy"].ci_high
    # a prediction in the wrong group is not counted inside the groups at all
    r = compute_metrics("classification", np.array([0, 1]), np.array([0, 4]), n_classes=5, n_boot=0,
                        class_group=groups, metrics=["within_group_accuracy"])
    assert r["within_group_accuracy"].value == 1.0


def test_group_metrics_need_groups():
    from geodiv.evaluate.metrics import class_group_ids

    with pytest.raises(InputError, match="needs a classification task with class groups"):
        compute_metrics("classification", np.array([0, 1]), np.array([0, 1]), metrics=["group_accuracy"])
    with pytest.raises(InputError, match="names 'z', which is not one of the task's classes"):
        class_group_ids(["a", "b"], {"g": ["a", "z"]})
    with pytest.raises(InputError, match="class 'b' is in groups 'g' and 'h'"):
        class_group_ids(["a", "b", "c"], {"g": ["a", "b"], "h": ["b", "c"]})
    assert class_group_ids(["a", "b"], None) is None
