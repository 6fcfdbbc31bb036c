"""Downstream metrics, each with a seeded 95% bootstrap interval, and GEO-Bench's aggregate score.

Every metric is written as a function of per-sample *bootstrap weights*: a replicate of the bootstrap is a
vector of multinomial counts over the n test samples, and the metric of the resampled set equals the metric
computed with those counts as sample weights. Most metrics are then a matrix product of the weights with
per-sample sufficient statistics (hits, per-class counts, squared errors, per-image confusion matrices), so a
thousand replicates cost one BLAS call instead of a thousand Python loops. The point value is the same function
with all weights equal to one, so point value and interval can never disagree about the definition.

The bootstrap unit is the test *sample* (an image), also for segmentation, where pixels of one image are not
independent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import trim_mean

from geodiv.errors import InputError
from geodiv.evaluate.tasks.base import TASK_TYPES, check_class_groups

#: Metrics reported for each task type, in report order (the first is the headline metric).
METRICS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "multilabel": ("map", "micro_f1"),
    "regression": ("r2", "rmse"),
    "segmentation": ("f1", "miou"),
}
#: Metrics for which a smaller value is better (the GEO-Bench aggregate flips them).
LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse"})
#: Extra metrics of a classification task that declares class groups (``Task.class_groups``: classes that look alike
#: by design, e.g. SimEarth's arrangement groups): ``group_accuracy``, the share of test samples whose predicted
#: class is in the true class's group (a class outside every group is a group of its own); ``within_group_accuracy``,
#: among the samples of grouped classes whose prediction falls in the right group, the share predicted exactly.
#: Accuracy on the grouped classes is their product, so they split it into telling the groups apart and telling a
#: group's members apart.
GROUP_METRICS: tuple[str, ...] = ("group_accuracy", "within_group_accuracy")

# Bootstrap replicates are evaluated in chunks so that the (replicates x samples) weight matrix stays small.
_MAX_WEIGHT_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class MetricResult:
    """One metric on one test set: value and percentile bootstrap interval (None when n == 0)."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


# ---------------------------------------------------------------------------- weighted metric kernels
# Each factory takes the test labels and predictions and returns fn(W) -> values, W (b, n) sample weights.
WeightedMetric = Callable[[np.ndarray], np.ndarray]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(x)
    count = valid.sum(axis=1)
    total = np.where(valid, x, 0.0).sum(axis=1)
    return _safe_div(total, count.astype(float))


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float64)
    valid = (labels >= 0) & (labels < n_classes)
    out[np.nonzero(valid)[0], labels[valid]] = 1.0
    return out


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> WeightedMetric:
    hits = (y_true == y_pred).astype(np.float64)
    return lambda w: _safe_div(w @ hits, w.sum(axis=1))


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> WeightedMetric:
    # Per class: true positives, predicted count, true count; classes absent from both truth and prediction of a
    # (resampled) set are left out of the mean, as scikit-learn does for labels not present.
    t = _one_hot(y_true, n_classes)
    p = _one_hot(y_pred, n_classes)
    stats = np.concatenate([t * p, p, t], axis=1)

    def fn(w: np.ndarray) -> np.ndarray:
        s = w @ stats
        tp, pc, tc = s[:, :n_classes], s[:, n_classes : 2 * n_classes], s[:, 2 * n_classes :]
        return _nanmean_rows(_safe_div(2 * tp, pc + tc))

    return fn


def _micro_f1_multilabel(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> WeightedMetric:
    pred = scores >= threshold
    truth = y_true > 0.5
    stats = np.stack(
        [(pred & truth).sum(1), (pred & ~truth).sum(1), (~pred & truth).sum(1)], axis=1
    ).astype(np.float64)

    def fn(w: np.ndarray) -> np.ndarray:
        tp, fp, fn_ = (w @ stats).T
        return _safe_div(2 * tp, 2 * tp + fp + fn_)

    return fn


def _mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> WeightedMetric:
    """Macro mean over labels of average precision (scikit-learn's step-wise definition, ties grouped)."""
    truth = (y_true > 0.5).astype(np.float64)
    per_label = []
    for j in range(truth.shape[1]):
        order = np.argsort(-scores[:, j], kind="stable")
        sorted_scores = scores[order, j]
        # Last position of each group of tied scores: precision/recall are only defined at thresholds.
        ends = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(order) - 1]
        per_label.append((order, truth[order, j], ends))

    def fn(w: np.ndarray) -> np.ndarray:
        aps = np.empty((w.shape[0], len(per_label)))
        for j, (order, y_sorted, ends) in enumerate(per_label):
            ws = w[:, order]
            tp = np.cumsum(ws * y_sorted, axis=1)[:, ends]
            seen = np.cumsum(ws, axis=1)[:, ends]
            total_pos = tp[:, -1:]
            precision = _safe_div(tp, seen)
            recall_step = np.diff(np.concatenate([np.zeros_like(total_pos), tp], axis=1), axis=1)
            ap = _safe_div(np.nansum(recall_step * np.nan_to_num(precision), axis=1, keepdims=True), total_pos)
            aps[:, j] = ap[:, 0]
        return _nanmean_rows(aps)

    return fn


def class_group_ids(classes: Sequence[str], class_groups: Mapping[str, Sequence[str]] | None) -> np.ndarray | None:
    """Group index of each class (``class_groups``' groups first, then one group per class outside them), or None
    without groups; the groups are checked first (``tasks.base.check_class_groups``: ``InputError``)."""
    groups = check_class_groups(dict(class_groups) if class_groups else None, "classification", classes)
    if not groups:
        return None
    index = {c: i for i, c in enumerate(classes)}
    ids = np.full(len(classes), -1, dtype=np.int64)
    for g, members in enumerate(groups.values()):
        ids[[index[m] for m in members]] = g
    alone = np.nonzero(ids < 0)[0]
    ids[alone] = len(groups) + np.arange(alone.size)
    return ids


def _group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray) -> WeightedMetric:
    hits = (group[y_true] == group[y_pred]).astype(np.float64)
    return lambda w: _safe_div(w @ hits, w.sum(axis=1))


def _within_group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray) -> WeightedMetric:
    grouped = np.bincount(group)[group] > 1  # per class: in a group of two or more
    right_group = (grouped[y_true] & (group[y_true] == group[y_pred])).astype(np.float64)
    exact = right_group * (y_true == y_pred)
    return lambda w: _safe_div(w @ exact, w @ right_group)


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> WeightedMetric:
    # Centre y first (R^2 is shift invariant) so that syy - sy^2/n does not cancel catastrophically.
    y = y_true.astype(np.float64)
    yc = y - y.mean()
    stats = np.stack([yc, yc * yc, (y - y_pred) ** 2], axis=1)

    def fn(w: np.ndarray) -> np.ndarray:
        n = w.sum(axis=1)
        sy, syy, sse = (w @ stats).T
        ss_tot = syy - _safe_div(sy * sy, n)
        ss_tot = np.where(ss_tot > 1e-12 * np.maximum(syy, 1e-300), ss_tot, 0.0)
        return 1.0 - _safe_div(sse, ss_tot)

    return fn


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> WeightedMetric:
    sq = (y_true.astype(np.float64) - y_pred) ** 2
    return lambda w: np.sqrt(_safe_div(w @ sq, w.sum(axis=1)))


def confusion_per_image(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, K*K) per-image pixel confusion counts (row = truth); pixels labelled outside [0, K) are ignored."""
    y_true = y_true.reshape(y_true.shape[0], -1).astype(np.int64)
    y_pred = y_pred.reshape(y_pred.shape[0], -1).astype(np.int64)
    valid = (y_true >= 0) & (y_true < n_classes)
    cell = np.where(valid, y_true * n_classes + np.clip(y_pred, 0, n_classes - 1), n_classes * n_classes)
    offsets = np.arange(y_true.shape[0])[:, None] * (n_classes * n_classes + 1)
    counts = np.bincount((cell + offsets).ravel(), minlength=y_true.shape[0] * (n_classes * n_classes + 1))
    return counts.reshape(y_true.shape[0], -1)[:, :-1].astype(np.float64)


def _segmentation(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, kind: str) -> WeightedMetric:
    conf = confusion_per_image(y_true, y_pred, n_classes)
    diag = np.arange(n_classes) * (n_classes + 1)

    def fn(w: np.ndarray) -> np.ndarray:
        c = (w @ conf).reshape(w.shape[0], n_classes, n_classes)
        tp = c.reshape(w.shape[0], -1)[:, diag]
        fp = c.sum(axis=1) - tp
        fn_ = c.sum(axis=2) - tp
        if kind == "f1":
            return _nanmean_rows(_safe_div(2 * tp, 2 * tp + fp + fn_))
        return _nanmean_rows(_safe_div(tp, tp + fp + fn_))

    return fn


def _kernel(
    metric: str,
    task_type: str,
    y_true: np.ndarray,
    prediction: np.ndarray,
    n_classes: int | None,
    threshold: float,
    class_group: np.ndarray | None = None,
) -> WeightedMetric:
    if metric in GROUP_METRICS:
        if task_type != "classification" or class_group is None:
            raise InputError(f"metric {metric!r} needs a classification task with class groups (class_group)")
        kernel = _group_accuracy if metric == "group_accuracy" else _within_group_accuracy
        return kernel(y_true, prediction, class_group)
    if metric == "accuracy":
        return _accuracy(y_true, prediction)
    if metric == "macro_f1":
        return _macro_f1(y_true, prediction, _need_classes(n_classes, metric))
    if metric == "map":
        return _mean_average_precision(y_true, prediction)
    if metric == "micro_f1":
        return _micro_f1_multilabel(y_true, prediction, threshold)
    if metric == "r2":
        return _r2(y_true, prediction)
    if metric == "rmse":
        return _rmse(y_true, prediction)
    if metric in ("f1", "miou"):
        return _segmentation(y_true, prediction, _need_classes(n_classes, metric), metric)
    raise InputError(f"unknown metric {metric!r} for a {task_type} task; known: {METRICS_BY_TYPE[task_type]}")


def _need_classes(n_classes: int | None, metric: str) -> int:
    if not n_classes:
        raise InputError(f"metric {metric!r} needs the number of classes")
    return int(n_classes)


# ------------------------------------------------------------------------------------------ public API
def as_prediction(task_type: str, scores: np.ndarray) -> np.ndarray:
    """A head's scores as the ``prediction`` :func:`compute_metrics` takes: the top class for classification,
    the scores themselves otherwise (multi-label scores, regression values, predicted masks)."""
    return scores.argmax(1) if task_type == "classification" else scores


def bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) multinomial resampling counts: row b says how often each sample is drawn in replicate b."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def compute_metrics(
    task_type: str,
    y_true: np.ndarray,
    prediction: np.ndarray,
    *,
    n_classes: int | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    threshold: float = 0.5,
    class_group: np.ndarray | None = None,
) -> dict[str, MetricResult]:
    """Metrics of one test set with percentile bootstrap intervals (the same replicates for every metric).

    ``prediction`` is: class indices (n,) for classification, per-label scores in [0, 1] (n, K) for multilabel
    (``threshold`` turns them into decisions for micro-F1; mAP uses the scores), values (n,) for regression, and
    predicted masks (n, H, W) for segmentation (truth pixels outside [0, K) are ignored). ``class_group``: the
    group index of each class (:func:`class_group_ids`), needed by ``GROUP_METRICS``.
    An empty test set gives ``MetricResult(None, None, None, 0)`` for every metric.
    """
    if task_type not in METRICS_BY_TYPE:
        raise InputError(f"unknown task type {task_type!r}; expected one of {', '.join(TASK_TYPES)}")
    names = tuple(metrics) if metrics is not None else METRICS_BY_TYPE[task_type]
    y_true = np.asarray(y_true)
    prediction = np.asarray(prediction)
    if y_true.shape[0] != prediction.shape[0]:
        raise InputError(
            f"{y_true.shape[0]} labels but {prediction.shape[0]} predictions: each test sample needs exactly one"
        )
    n = int(y_true.shape[0])
    if n == 0:
        return {m: MetricResult(None, None, None, 0) for m in names}
    if task_type in ("classification", "segmentation") and n_classes is None:
        n_classes = int(max(y_true.max(), prediction.max())) + 1
    kernels = {m: _kernel(m, task_type, y_true, prediction, n_classes, threshold, class_group) for m in names}
    ones = np.ones((1, n))
    points = {m: float(k(ones)[0]) for m, k in kernels.items()}
    replicates: dict[str, list[np.ndarray]] = {m: [] for m in names}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        chunk = max(1, _MAX_WEIGHT_ELEMENTS // n)
        for start in range(0, n_boot, chunk):
            w = bootstrap_weights(n, min(chunk, n_boot - start), rng)
            for m, k in kernels.items():
                replicates[m].append(k(w))
    alpha = (1.0 - level) / 2.0
    out = {}
    for m in names:
        value = points[m]
        value = None if not np.isfinite(value) else value
        lo = hi = None
        if replicates[m]:
            reps = np.concatenate(replicates[m])
            reps = reps[np.isfinite(reps)]
            if reps.size:
                lo, hi = (float(v) for v in np.quantile(reps, [alpha, 1.0 - alpha]))
        out[m] = MetricResult(value, lo, hi, n)
    return out


# --------------------------------------------------------------------------------- GEO-Bench aggregate
@dataclass(frozen=True)
class AggregateResult:
    value: float
    ci_low: float
    ci_high: float
    n_tasks: int
    n_values: int


def geobench_aggregate(
    rows: Iterable[Mapping],
    *,
    model_key: str = "checkpoint",
    task_key: str = "task",
    value_key: str = "value",
    metric_key: str | None = "metric",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, AggregateResult]:
    """GEO-Bench's aggregate score of each model over a table of results.

    As GEO-Bench defines it: per task, scores are min-max normalised over every compared model (and seed), so
    the worst result on a task is 0 and the best 1; a model's aggregate is the interquartile mean (25% trimmed
    mean) of its normalised scores over tasks and seeds; the interval comes from a bootstrap stratified by task
    (each replicate resamples, within every (model, task) cell, that cell's seeds with replacement).
    Rows are mappings (e.g. ``evaluate`` records, several per cell for several seeds); rows whose value is
    None are skipped. Metrics in ``LOWER_IS_BETTER`` are flipped so that 1 is always best. A task on which
    every model scored the same contributes 0.5 to everyone (a tie moves no model).
    """
    cells: dict[str, dict[str, list[float]]] = {}
    flipped: dict[str, bool] = {}
    for row in rows:
        value = row.get(value_key)
        if value is None:
            continue
        task = str(row[task_key])
        if metric_key is not None and row.get(metric_key) is not None:
            flipped[task] = str(row[metric_key]) in LOWER_IS_BETTER
        cells.setdefault(str(row[model_key]), {}).setdefault(task, []).append(float(value))
    if not cells:
        raise InputError("GEO-Bench aggregate: the results table holds no values")
    tasks = sorted({t for per_task in cells.values() for t in per_task})
    ranges = {}
    for t in tasks:
        vals = np.concatenate([per_task[t] for per_task in cells.values() if t in per_task])
        ranges[t] = (float(vals.min()), float(vals.max()))

    def normalise(t: str, v: np.ndarray) -> np.ndarray:
        lo, hi = ranges[t]
        if hi - lo <= 0:
            return np.full_like(v, 0.5)
        z = (v - lo) / (hi - lo)
        return 1.0 - z if flipped.get(t, False) else z

    rng = np.random.default_rng(seed)
    alpha = (1.0 - level) / 2.0
    out = {}
    for model, per_task in cells.items():
        groups = [normalise(t, np.asarray(v)) for t, v in sorted(per_task.items())]
        allv = np.concatenate(groups)
        point = float(trim_mean(allv, 0.25))
        if n_boot > 0:
            resampled = [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups]
            reps = trim_mean(np.concatenate(resampled, axis=1), 0.25, axis=1)
            lo, hi = (float(x) for x in np.quantile(reps, [alpha, 1.0 - alpha]))
        else:
            lo = hi = point
        out[model] = AggregateResult(point, lo, hi, len(groups), int(allv.size))
    return out
