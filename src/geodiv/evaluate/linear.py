"""Linear probe on cached frozen features (the torchgeo-bench convention, not the 90-epoch SGD head).

Features are standardised (mean/std of the fitting set). Classification: multinomial logistic regression
(L-BFGS) with the inverse regularisation strength C chosen on the validation split from a log grid, then refit
on train + validation. Multi-label: one-vs-rest logistic regression, C chosen by validation mAP. Regression:
ridge regression with alpha chosen by validation R^2. Segmentation: the same multinomial classifier fitted on
patch tokens (each token weighted by the class fractions of the pixels it covers, which equals pixel-level
cross-entropy with nearest-neighbour upsampling), its logits upsampled bilinearly to pixels at prediction time.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from geodiv.errors import InputError
from geodiv.evaluate.config import DEFAULT_ALPHA_GRID, DEFAULT_C_GRID
from geodiv.evaluate.metrics import METRICS_BY_TYPE, compute_metrics


@dataclass
class LinearProbe:
    """A fitted linear head: ``scores(x)`` gives class probabilities / label probabilities / values."""

    task_type: str
    n_classes: int | None
    scaler: StandardScaler
    model: object | None
    param_name: str
    param: float | None
    constant: np.ndarray | None = None  # prediction when the fitting set holds a single class
    # grid value -> (validation headline metric, minus validation log-loss)
    selection: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _mapped(self, values: np.ndarray, classes: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((values.shape[0], self.n_classes), fill, dtype=np.float64)
        out[:, classes.astype(np.int64)] = values
        return out

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class logits (n, K) (classification / segmentation); classes unseen in fitting get -inf-like logits."""
        x = self.scaler.transform(np.asarray(x, dtype=np.float64))
        if self.constant is not None:
            return np.tile(np.where(self.constant > 0, 0.0, -1e9), (x.shape[0], 1))
        model = self.model
        raw = model.decision_function(x)  # type: ignore[attr-defined]
        classes = model.classes_  # type: ignore[attr-defined]
        if raw.ndim == 1:  # binary: decision is the logit of classes_[1] against classes_[0]
            raw = np.stack([-raw / 2, raw / 2], axis=1)
        return self._mapped(raw, classes, -1e9)

    def scores(self, x: np.ndarray) -> np.ndarray:
        if self.task_type in ("classification", "segmentation"):
            z = self.logits(x)
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        x_std = self.scaler.transform(np.asarray(x, dtype=np.float64))
        if self.task_type == "multilabel":
            return self.model.predict_proba(x_std)  # type: ignore[attr-defined]
        return self.model.predict(x_std)  # type: ignore[attr-defined]


def _check(features: np.ndarray, targets: np.ndarray, split: str) -> None:
    if features.shape[0] != targets.shape[0]:
        raise InputError(
            f"linear probe: {split} has {features.shape[0]} feature rows but {targets.shape[0]} labels; "
            "features and labels must come from the same samples (stale feature cache? delete it and rerun)"
        )


def _fit_once(
    task_type: str,
    x: np.ndarray,
    y: np.ndarray,
    param: float,
    n_classes: int | None,
    max_iter: int,
    sample_weight: np.ndarray | None,
    seed: int,
    warm: LinearProbe | None = None,
    scaler: StandardScaler | None = None,
) -> LinearProbe:
    scaler = scaler or StandardScaler().fit(x, sample_weight=sample_weight)
    xs = scaler.transform(x)
    with warnings.catch_warnings():
        # A probe that stops at max_iter is still a valid probe; the grid and the budget are documented.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*Label not .* present.*")
        # scikit-learn guesses "regression?" when a head has more classes than half its samples: a 24-class head
        # trained on one continent's few scene patches does; the task's type says what it is.
        warnings.filterwarnings("ignore", message=".*number of unique classes is greater than 50%.*")
        if task_type == "regression":
            model = Ridge(alpha=param).fit(xs, y, sample_weight=sample_weight)
            return LinearProbe(task_type, None, scaler, model, "alpha", param)
        if task_type == "multilabel":
            base = LogisticRegression(C=param, solver="lbfgs", max_iter=max_iter, random_state=seed)
            model = OneVsRestClassifier(base).fit(xs, (y > 0.5).astype(np.int64))
            return LinearProbe(task_type, n_classes, scaler, model, "C", param)
        present = np.unique(y)
        if present.size == 1:
            constant = np.zeros(n_classes or int(present[0]) + 1)
            constant[int(present[0])] = 1.0
            return LinearProbe(task_type, len(constant), scaler, None, "C", param, constant=constant)
        if warm is not None and isinstance(warm.model, LogisticRegression) and np.array_equal(
            warm.model.classes_, present
        ):
            # Warm start from the neighbouring grid value (or the selected fit): same optimum, fewer iterations.
            model = copy.deepcopy(warm.model).set_params(C=param, warm_start=True)
        else:
            model = LogisticRegression(C=param, solver="lbfgs", max_iter=max_iter, random_state=seed)
        model.fit(xs, y, sample_weight=sample_weight)
        return LinearProbe(task_type, n_classes, scaler, model, "C", param)


def _validation_score(
    probe: LinearProbe, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None
) -> tuple[float, float]:
    """(headline metric, minus log-loss) on validation: compared as a tuple, so the proper scoring rule breaks
    ties of the (coarse, on small validation sets) headline metric. Regression and multi-label: no tie-break."""
    scores = probe.scores(x)
    if probe.task_type in ("classification", "segmentation"):
        p_true = np.clip(scores[np.arange(len(y)), y.astype(np.int64)], 1e-12, 1.0)
        neg_log_loss = float(np.average(np.log(p_true), weights=weight))
        if probe.task_type == "segmentation":
            # Pixel accuracy at patch resolution: weighted hits of the expanded (token, class) rows.
            return float(np.average(scores.argmax(1) == y, weights=weight)), neg_log_loss
        scores = scores.argmax(1)
    else:
        neg_log_loss = 0.0
    headline = METRICS_BY_TYPE[probe.task_type][0]
    res = compute_metrics(
        probe.task_type, y, scores, n_classes=probe.n_classes, metrics=[headline], n_boot=0
    )[headline]
    return (-np.inf if res.value is None else float(res.value)), neg_log_loss


def fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray | None,
    val_y: np.ndarray | None,
    *,
    task_type: str,
    n_classes: int | None = None,
    grid: Sequence[float] | None = None,
    fixed_param: float | None = None,
    refit_on_train_val: bool = True,
    max_iter: int = 1000,
    train_weight: np.ndarray | None = None,
    val_weight: np.ndarray | None = None,
    seed: int = 0,
    threads: int | None = 1,
) -> LinearProbe:
    """Fit a linear probe, choosing C (or ridge alpha) on the validation set.

    With ``fixed_param`` or an empty validation set, no selection happens: ``fixed_param`` (or the middle of
    the grid) is used and the probe is fitted on what there is. ``threads`` caps the BLAS threads while
    fitting (None: library default): probe problems are small, and multi-threaded BLAS on them mostly spins.
    """
    with threadpool_limits(limits=threads):
        return _fit_linear_probe(
            train_x, train_y, val_x, val_y, task_type=task_type, n_classes=n_classes, grid=grid,
            fixed_param=fixed_param, refit_on_train_val=refit_on_train_val, max_iter=max_iter,
            train_weight=train_weight, val_weight=val_weight, seed=seed,
        )


def _fit_linear_probe(
    train_x, train_y, val_x, val_y, *, task_type, n_classes, grid, fixed_param, refit_on_train_val, max_iter,
    train_weight, val_weight, seed,
) -> LinearProbe:
    train_x = np.asarray(train_x, dtype=np.float64)
    train_y = np.asarray(train_y)
    _check(train_x, train_y, "train")
    if train_x.shape[0] == 0:
        raise InputError("linear probe: the training set is empty")
    has_val = val_x is not None and val_y is not None and len(val_y) > 0
    if has_val:
        val_x = np.asarray(val_x, dtype=np.float64)
        val_y = np.asarray(val_y)
        _check(val_x, val_y, "val")
    if grid is None:
        grid = DEFAULT_ALPHA_GRID if task_type == "regression" else DEFAULT_C_GRID
    grid = sorted(grid, reverse=task_type == "regression")  # strongest regularisation first
    selection: dict[str, tuple[float, float]] = {}
    best_probe: LinearProbe | None = None
    if fixed_param is not None or not has_val:
        chosen = fixed_param if fixed_param is not None else float(grid[len(grid) // 2])
    else:
        best: tuple[float, float] = (-np.inf, -np.inf)
        chosen = float(grid[0])
        scaler = StandardScaler().fit(train_x, sample_weight=train_weight)
        previous = None
        for value in grid:
            previous = _fit_once(task_type, train_x, train_y, value, n_classes, max_iter, train_weight, seed,
                                 warm=previous, scaler=scaler)
            score = _validation_score(previous, val_x, val_y, val_weight)
            selection[f"{value:g}"] = score
            if score > best:  # full ties keep the stronger regularisation
                best, chosen, best_probe = score, float(value), previous
    if has_val and refit_on_train_val:
        fit_x = np.concatenate([train_x, val_x])
        fit_y = np.concatenate([train_y, val_y])
        fit_w = None
        if train_weight is not None or val_weight is not None:
            tw = train_weight if train_weight is not None else np.ones(len(train_y))
            vw = val_weight if val_weight is not None else np.ones(len(val_y))
            fit_w = np.concatenate([tw, vw])
    else:
        fit_x, fit_y, fit_w = train_x, train_y, train_weight
    if fit_x is train_x and selection:
        probe = best_probe  # nothing to refit: the selected fit is the probe
    else:
        probe = _fit_once(task_type, fit_x, fit_y, chosen, n_classes, max_iter, fit_w, seed,
                          warm=best_probe)
    probe.selection = selection
    return probe
