"""``evaluate``: one checkpoint, one task, one protocol -> result records (JSON + CSV).

The flow: resolve the task and the encoder; map bands by name; read each split once (labels and locations
cached); compute frozen features once per (checkpoint, task, split, transform) for kNN / linear, or fine-tune;
train one head per training region of the region plan; score every head on every test region with bootstrap
intervals; write one record per (task, protocol, train region, test region, metric[, k]).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geodiv.atomic import atomic_open, check_target, file_lock, write_json
from geodiv.errors import DataError, InputError
from geodiv.evaluate.baseline import SPECTRAL, is_spectral, spectral_encoder, spectral_encoder_like
from geodiv.evaluate.config import EvalConfig, resolve_config
from geodiv.evaluate.encoders import Encoder, load_encoder
from geodiv.evaluate.feature_cache import FeatureStore, SplitTable, split_size
from geodiv.evaluate.finetune import finetune, predict
from geodiv.evaluate.inputs import BandPlan, EvalTransform, plan_bands
from geodiv.evaluate.knn import knn_predict_many
from geodiv.evaluate.linear import fit_linear_probe
from geodiv.evaluate.metrics import (
    GROUP_METRICS,
    METRICS_BY_TYPE,
    as_prediction,
    class_group_ids,
    compute_metrics,
)
from geodiv.evaluate.regions import GLOBAL, HeadSpec, fill_continents, plan_regions
from geodiv.evaluate.segmentation import patch_fractions, upsample_patch_scores
from geodiv.evaluate.tasks.base import TASK_TYPES
from geodiv.evaluate.tasks.registry import load_task
from geodiv.models.features import default_device
from geodiv.progress import log

PROTOCOLS = ("knn", "linear", "finetune")
RECORD_FIELDS = (
    "task", "protocol", "metric", "value", "ci_low", "ci_high", "region", "train_region", "n", "checkpoint",
    "n_train", "params", "notes", "checkpoint_id", "max_class_share",
)
#: A classification head whose most frequent predicted class covers more than this share of a test set has
#: collapsed (it predicts one class); its records carry ``max_class_share`` and the report flags them.
COLLAPSE_SHARE = 0.9
#: Appended to ``checkpoint_id`` in the records of frozen features with the band statistics appended
#: (``features.band_statistics``), so that results.csv tells them from the encoder's own features.
BAND_STATISTICS_SUFFIX = "+band_statistics"

_STORES: dict[str, FeatureStore] = {}


def feature_store(cache_dir: str | os.PathLike[str] | None) -> FeatureStore:
    """One store per cache folder and process, so repeated ``evaluate`` calls share in-memory inputs/features."""
    key = str(Path(cache_dir).resolve()) if cache_dir is not None else ""
    if key not in _STORES:
        _STORES[key] = FeatureStore(Path(cache_dir) if cache_dir is not None else None)
    return _STORES[key]


def resolve_task(task: Any, options: dict[str, Any] | None = None) -> Any:
    """A Task object as is; a string through ``geodiv.evaluate.tasks.registry.load_task`` (SimEarth name or path) with the
    reader's ``options`` (each reader validates its own)."""
    if not isinstance(task, (str, os.PathLike)):
        if options:
            raise InputError(f"task options {sorted(options)} apply to a task name or path, not to a loaded task")
        return task
    return load_task(task, **(options or {}))


# --------------------------------------------------------------------------------------- data prep
class _Splits:
    """Train/val/test tables (and row maps when val is carved out of train)."""

    def __init__(self, task: Any, store: FeatureStore, cfg: EvalConfig, seed: int):
        self.task, self.store = task, store
        splits = list(task.splits())
        for needed in ("train", "test"):
            if needed not in splits:
                raise InputError(f"task {task.name!r} has no {needed!r} split (it has {splits}); evaluation needs both")
        self.has_val = "val" in splits and split_size(task, "val") != 0
        train = store.table(task, "train")
        if self.has_val:
            self.train_rows = np.arange(len(train))
            self.val_rows = None
            self.val_source = "val"
        else:
            # No validation split: hold out a seeded fraction of train for model selection.
            perm = np.random.default_rng(seed).permutation(len(train))
            n_val = int(round(cfg.val_fraction * len(train)))
            self.val_rows, self.train_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            self.val_source = "train"
        self.tables = {
            "train": train.subset(self.train_rows),
            "val": store.table(task, "val") if self.has_val else train.subset(self.val_rows),
            "test": store.table(task, "test"),
        }

    def rows(self, split: str, full: np.ndarray) -> np.ndarray:
        """Rows of a per-split array (features, inputs) computed on the task's own split."""
        if split == "train":
            return full[self.train_rows]
        if split == "val" and not self.has_val:
            return full[self.val_rows]
        return full

    def source(self, split: str) -> str:
        return self.val_source if split == "val" else split

    def features(self, encoder: Encoder, plan: BandPlan, transform: EvalTransform, kind: str, cfg: EvalConfig):
        cache: dict[str, np.ndarray] = {}
        out = {}
        for split in ("train", "val", "test"):
            src = self.source(split)
            if src not in cache:
                cache[src] = self.store.features(
                    encoder, self.task, src, plan, transform, kind=kind, pool=cfg.features.pool,
                    batch_size=cfg.features.batch_size, device=str(default_device(cfg.features.device)),
                )
            out[split] = self.rows(split, cache[src])
        return out

    def inputs(self, plan: BandPlan, transform: EvalTransform, split: str) -> np.ndarray:
        return self.rows(split, self.store.inputs(self.task, self.source(split), plan, transform))


def _check_labels(task: Any, tables: dict[str, SplitTable], n_classes: int | None) -> None:
    for split, t in tables.items():
        if len(t) == 0:
            continue
        where = f"task {task.name!r} split {split!r}"
        if task.type in ("classification", "segmentation"):
            if task.type == "classification":
                bad = np.nonzero((t.labels < 0) | (t.labels >= n_classes))[0]
                if bad.size:
                    raise DataError(
                        f"{where}: sample {t.keys[bad[0]]} has label {t.labels[bad[0]]}, outside 0..{n_classes - 1} "
                        f"({n_classes} classes); fix the labels or the task's class list"
                    )
            elif t.labels.ndim != 3:
                raise DataError(f"{where}: segmentation labels must be (H, W) masks, got shape {t.labels.shape[1:]}")
        elif task.type == "multilabel":
            if t.labels.ndim != 2 or t.labels.shape[1] != n_classes:
                raise DataError(
                    f"{where}: multi-label targets must be multi-hot vectors of length {n_classes}, got shape "
                    f"{t.labels.shape[1:]}"
                )
        elif not np.all(np.isfinite(t.labels)):
            bad = np.nonzero(~np.isfinite(t.labels))[0][0]
            raise DataError(f"{where}: sample {t.keys[bad]} has a non-finite regression target")


# ------------------------------------------------------------------------------------- protocols
# A head maps a HeadSpec to {params: test predictions in metric format} (predictions for the whole test set).
HeadFn = Callable[[HeadSpec], list[tuple[dict, np.ndarray]]]


def _feature_heads(
    protocol: str, task: Any, splits: _Splits, encoder: Encoder, plan: BandPlan, transform: EvalTransform,
    cfg: EvalConfig, n_classes: int | None, seed: int, notes: list[str], heads: list[HeadSpec],
) -> HeadFn | None:
    seg = task.type == "segmentation"
    if seg and protocol == "knn" and cfg.knn.segmentation == "skip":
        notes.append("kNN segmentation skipped (knn.segmentation: skip)")
        return None
    kind = "tokens" if seg else "pooled"
    feats = splits.features(encoder, plan, transform, kind, cfg)
    if appends_band_statistics(encoder, cfg):  # the statistics of the same inputs, on the same token grid
        stats = splits.features(spectral_encoder_like(encoder, cfg.features.normalize), plan, transform, kind, cfg)
        if feats["test"].shape[:-1] != stats["test"].shape[:-1]:
            raise InputError(
                f"features.band_statistics on task {task.name!r}: the encoder gives {kind} features of shape "
                f"{feats['test'].shape[1:]} per image but the statistics {stats['test'].shape[1:]} (a token grid of "
                "another patch size: the encoder's config names none); evaluate it without features.band_statistics"
            )
        feats = {split: np.concatenate([f, stats[split].astype(f.dtype)], axis=-1) for split, f in feats.items()}
    frozen = _FrozenFeatureHeads(task, splits.tables, feats, cfg, n_classes, seed, heads)
    return frozen.knn_head if protocol == "knn" else frozen.linear_head


def appends_band_statistics(encoder: Encoder, cfg: EvalConfig) -> bool:
    """Whether ``encoder``'s frozen features get the band statistics appended (not the baseline's own)."""
    return cfg.features.band_statistics and encoder.source != SPECTRAL


class _FrozenFeatureHeads:
    """The kNN and linear heads on one task's frozen features (pooled, or patch tokens for segmentation, where
    each token's target is its patch's class fractions). One neighbour search serves every kNN head; a linear head
    without validation data takes the global head's regularisation."""

    def __init__(self, task: Any, tables: dict, feats: dict[str, np.ndarray], cfg: EvalConfig,
                 n_classes: int | None, seed: int, heads: list[HeadSpec]) -> None:
        self.task, self.tables, self.feats, self.cfg = task, tables, feats, cfg
        self.n_classes, self.seed, self.heads = n_classes, seed, heads
        self.seg = task.type == "segmentation"
        if self.seg:
            grid = int(round(feats["train"].shape[1] ** 0.5))
            self.fractions = {s: patch_fractions(tables[s].labels, grid, n_classes) for s in ("train", "val")}
            self.out_hw = tuple(tables["test"].labels.shape[-2:])
        for split in ("train", "val", "test"):
            if feats[split].shape[0] != len(tables[split]):
                raise DataError(f"{split}: {feats[split].shape[0]} feature rows for {len(tables[split])} samples")
        self.global_param: dict[str, float] = {}
        self.knn_results: dict[int, dict[int, np.ndarray]] = {}

    def tokens_of(self, split: str, idx: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The patch tokens of samples ``idx`` as float32 rows (only ``rows`` of them, when given)."""
        f = self.feats[split][idx]
        f = f.reshape(-1, f.shape[-1])
        return (f if rows is None else f[rows]).astype(np.float32)

    def expanded(self, split: str, idx: np.ndarray):
        """(token, class) rows weighted by the class's pixel fraction in the token's patch; with
        ``linear.max_tokens``, from at most that many of the split's labelled tokens, drawn uniformly without
        replacement (seeded by the evaluation seed and the split, so every encoder fits on the same tokens)."""
        frac = self.fractions[split][idx].reshape(-1, self.n_classes)
        tokens = np.flatnonzero(frac.sum(1) > 0)  # tokens without labelled pixels give no rows
        limit = self.cfg.linear.max_tokens
        if limit is not None and tokens.size > limit:
            rng = np.random.default_rng((self.seed, ("train", "val").index(split)))
            tokens = np.sort(rng.choice(tokens, size=limit, replace=False))
        tok, cls = np.nonzero(frac[tokens] > 0)
        return self.tokens_of(split, idx, tokens[tok]), cls, frac[tokens[tok], cls]

    def knn_all(self) -> None:
        # Every head's training set is a subset of train + val: one neighbour search serves them all.
        tables, feats, n_classes, heads, cfg = self.tables, self.feats, self.n_classes, self.heads, self.cfg
        n_tr = len(tables["train"])
        rows = [np.concatenate([spec.train_idx, n_tr + np.asarray(spec.val_idx, dtype=np.int64)]) for spec in heads]
        if self.seg:
            every = np.arange(n_tr + len(tables["val"]))
            mem = np.concatenate([self.tokens_of("train", every[:n_tr]), self.tokens_of("val", every[n_tr:] - n_tr)])
            tgt = np.concatenate([self.fractions["train"].reshape(-1, n_classes),
                                  self.fractions["val"].reshape(-1, n_classes)])
            tokens = feats["train"].shape[1]
            keep = tgt.sum(1) > 0  # tokens without labelled pixels vote for nothing
            subsets = [t[keep[t]] for t in ((r[:, None] * tokens + np.arange(tokens)).ravel() for r in rows)]
            query = feats["test"].reshape(-1, feats["test"].shape[-1]).astype(np.float32)
            task_type = "distribution"
            log(f"kNN segmentation ({len(heads)} heads): {len(query)} test patch tokens against "
                f"{int(keep.sum())} train/val tokens")
        else:
            mem = np.concatenate([feats["train"], feats["val"]])
            tgt = np.concatenate([tables["train"].labels, tables["val"].labels])
            subsets, query, task_type = rows, feats["test"], self.task.type
        res = knn_predict_many(mem, tgt, query, subsets, ks=cfg.knn.k, temperature=cfg.knn.temperature,
                               task_type=task_type, n_classes=n_classes,
                               device=str(default_device(cfg.features.device)))
        self.knn_results.update({id(spec): r for spec, r in zip(heads, res)})

    def knn_head(self, spec: HeadSpec) -> list[tuple[dict, np.ndarray]]:
        if id(spec) not in self.knn_results:
            self.knn_all()
        res = self.knn_results.pop(id(spec))
        temperature = self.cfg.knn.temperature
        if self.seg:
            n_test = self.feats["test"].shape[0]
            return [({"k": k, "temperature": temperature},
                     upsample_patch_scores(s, n_test, self.out_hw)) for k, s in res.items()]
        return [({"k": k, "temperature": temperature}, as_prediction(self.task.type, s))
                for k, s in res.items()]

    def linear_head(self, spec: HeadSpec) -> list[tuple[dict, np.ndarray]]:
        task, tables, feats, cfg, n_classes, seed = self.task, self.tables, self.feats, self.cfg, self.n_classes, self.seed
        is_global = spec.train_region == GLOBAL
        fixed = None if (len(spec.val_idx) or is_global) else self.global_param.get("value")
        grid = cfg.linear.alpha_grid if task.type == "regression" else cfg.linear.c_grid
        if self.seg:
            tx, ty, tw = self.expanded("train", spec.train_idx)
            vx, vy, vw = self.expanded("val", spec.val_idx)
            probe = fit_linear_probe(tx, ty, vx, vy, task_type="segmentation", n_classes=n_classes, grid=grid,
                                     fixed_param=fixed, refit_on_train_val=cfg.linear.refit_on_train_val,
                                     max_iter=cfg.linear.max_iter, train_weight=tw, val_weight=vw, seed=seed,
                                     threads=cfg.linear.threads)
            n_test = feats["test"].shape[0]
            pred = upsample_patch_scores(probe.logits(self.tokens_of("test", np.arange(n_test))), n_test,
                                         self.out_hw)
        else:
            probe = fit_linear_probe(
                feats["train"][spec.train_idx], tables["train"].labels[spec.train_idx],
                feats["val"][spec.val_idx], tables["val"].labels[spec.val_idx],
                task_type=task.type, n_classes=n_classes, grid=grid, fixed_param=fixed,
                refit_on_train_val=cfg.linear.refit_on_train_val, max_iter=cfg.linear.max_iter, seed=seed,
                threads=cfg.linear.threads)
            pred = as_prediction(task.type, probe.scores(feats["test"]))
        if is_global:
            self.global_param["value"] = probe.param
        params = {probe.param_name: probe.param, "selected_on": "val" if fixed is None and len(spec.val_idx)
                  else ("global head" if fixed is not None else "none")}
        return [(params, pred)]


def _finetune_heads(
    task: Any, splits: _Splits, encoder: Encoder, plan: BandPlan, transform: EvalTransform, cfg: EvalConfig,
    n_classes: int | None, seed: int,
) -> HeadFn:
    tables = splits.tables
    train_tf = EvalTransform(transform.scheme, transform.size, transform.crop_pct, crop=False)
    train_inputs = splits.inputs(plan, train_tf, "train")
    val_inputs = splits.inputs(plan, transform, "val")
    test_inputs = splits.inputs(plan, transform, "test")
    seg = task.type == "segmentation"
    # The head's probe initialisation reads the linear protocol's frozen features (cached per encoder and split).
    probe = None if seg or cfg.finetune.head_init != "probe" else splits.features(encoder, plan, transform,
                                                                                   "pooled", cfg)
    hw = (lambda s: tuple(tables[s].labels.shape[-2:])) if seg else (lambda s: None)

    def head(spec: HeadSpec) -> list[tuple[dict, np.ndarray]]:
        res = finetune(
            encoder.module, train_inputs[spec.train_idx], tables["train"].labels[spec.train_idx],
            val_inputs[spec.val_idx], tables["val"].labels[spec.val_idx], task_type=task.type, n_classes=n_classes,
            config=cfg.finetune, pool=cfg.features.pool, seed=seed, val_inputs_hw=hw("val"),
            probe_features=None if probe is None else (probe["train"][spec.train_idx], probe["val"][spec.val_idx]),
        )
        scores = predict(res, test_inputs, batch_size=cfg.finetune.batch_size, out_hw=hw("test"),
                         device=cfg.finetune.device)
        params = {"epochs": cfg.finetune.epochs, "best_epoch": res.best_epoch, "blr": cfg.finetune.blr,
                  "layer_decay": cfg.finetune.layer_decay}
        return [(params, as_prediction(task.type, scores))]

    return head


# ------------------------------------------------------------------------------------------ entry
def evaluate(
    checkpoint: Any,
    task: Any,
    protocol: str | Sequence[str],
    by: str | None = None,
    out: str | os.PathLike[str] | None = None,
    config: EvalConfig | dict | str | os.PathLike[str] | None = None,
    seed: int = 0,
    task_options: dict[str, Any] | None = None,
) -> list[dict]:
    """Evaluate ``checkpoint`` (path, 'random'/None for zero pretraining, 'spectral' for the spectral-statistics
    baseline, or an encoder module) on ``task`` (Task object, SimEarth task name or task path) with ``protocol``
    ('knn', 'linear', 'finetune', or a list). ``task_options`` go to the task's reader (``load_task(task,
    **task_options)``; docs/tasks.md lists them).

    Returns records ``{task, protocol, metric, value, ci_low, ci_high, region, train_region, n, checkpoint,
    n_train, params, notes, checkpoint_id, max_class_share}`` (``max_class_share``: the share of the most
    frequent predicted class, classification and segmentation only, else None); with ``out`` they are written as
    JSON and as CSV beside it, while holding the lock of ``out`` (``file_lock``: evaluations writing other files into
    the same folder run side by side; they share its feature cache, whose files are written atomically).
    """
    if out is None:
        return _evaluate(checkpoint, task, protocol, by, out, config, seed, task_options)
    check_target(out)
    check_target(Path(out).with_suffix(".csv"))
    with file_lock(out, "geodiv evaluate", siblings=(Path(out).with_suffix(".csv"),)):
        return _evaluate(checkpoint, task, protocol, by, out, config, seed, task_options)


def _evaluate(
    checkpoint: Any,
    task: Any,
    protocol: str | Sequence[str],
    by: str | None,
    out: str | os.PathLike[str] | None,
    config: EvalConfig | dict | str | os.PathLike[str] | None,
    seed: int,
    task_options: dict[str, Any] | None = None,
) -> list[dict]:
    cfg = resolve_config(config)
    protocols = [protocol] if isinstance(protocol, str) else list(protocol)
    for p in protocols:
        if p not in PROTOCOLS:
            raise InputError(f"unknown protocol {p!r}; use one of {', '.join(PROTOCOLS)}")
    task_obj = resolve_task(task, task_options)
    if task_obj.type not in TASK_TYPES:
        raise InputError(f"task {task_obj.name!r} has type {task_obj.type!r}; expected one of {TASK_TYPES}")
    n_classes = len(task_obj.classes) if task_obj.classes is not None else None
    if task_obj.type != "regression" and not n_classes:
        raise InputError(f"task {task_obj.name!r} ({task_obj.type}) names no classes")
    cache_dir = cfg.features.cache_dir or (Path(out).parent / "feature_cache" if out is not None else None)
    store = feature_store(cache_dir)
    random_init = {"random_preset": cfg.random_init.preset, "random_overrides": cfg.random_init.overrides,
                   "random_bands": cfg.random_init.bands}
    if is_spectral(checkpoint):  # the spectral-statistics baseline, on the zero-pretraining encoder's inputs
        encoder = spectral_encoder(scheme=cfg.features.normalize, **random_init)
    else:
        encoder = load_encoder(checkpoint, seed=seed, **random_init)
    plan = plan_bands(task_obj.bands, encoder.bands, missing=cfg.features.missing_bands,
                      where=f"task {task_obj.name!r}")
    transform = EvalTransform(cfg.features.normalize, encoder.img_size, cfg.features.crop_pct,
                              crop=task_obj.type != "segmentation")
    splits = _Splits(task_obj, store, cfg, seed)
    _check_labels(task_obj, splits.tables, n_classes)
    continents = {s: t.continent for s, t in splits.tables.items()}
    if by is not None:
        continents = {s: fill_continents(t.continent, t.lat, t.lon) if (t.continent == "").any() else t.continent
                      for s, t in splits.tables.items()}
    if by is not None and hasattr(task_obj, "require_location"):
        task_obj.require_location("a per-continent evaluation (--by continent)")
    region_plans = {
        with_matrix: plan_regions(continents["train"], continents["val"], continents["test"], by=by,
                                  matrix=with_matrix, task_name=task_obj.name)
        for with_matrix in {cfg.regions.matrix and p in cfg.regions.matrix_protocols for p in protocols}
    }
    ckpt_name = encoder.source if encoder.source != "module" else encoder.checkpoint_id
    records: list[dict] = []
    for proto in protocols:
        notes = _notes(plan, task_obj, splits, cfg, seed)
        t0 = time.perf_counter()
        region_plan = region_plans[cfg.regions.matrix and proto in cfg.regions.matrix_protocols]
        if proto == "finetune":
            head = _finetune_heads(task_obj, splits, encoder, plan, transform, cfg, n_classes, seed)
        else:
            head = _feature_heads(proto, task_obj, splits, encoder, plan, transform, cfg, n_classes, seed, notes,
                                  region_plan.heads)
        if head is None:
            continue
        checkpoint_id = encoder.checkpoint_id
        if proto != "finetune" and appends_band_statistics(encoder, cfg):
            notes.append("features: the encoder's with the band statistics appended (features.band_statistics)")
            checkpoint_id += BAND_STATISTICS_SUFFIX
        records.extend(_head_records(head, region_plan, task_obj, proto, splits.tables["test"].labels, n_classes, cfg,
                                     seed, notes, ckpt_name, checkpoint_id))
        log(f"evaluate {task_obj.name} / {proto}: {len(region_plan.heads)} head(s) in {time.perf_counter() - t0:.1f}s")
    if out is not None:
        write_results(records, out)
    return records


def _notes(plan: BandPlan, task_obj: Any, splits: _Splits, cfg: EvalConfig, seed: int) -> list[str]:
    """What every record of a protocol says about how it was made (filled bands, the reader's facts, val split)."""
    notes = plan.notes()
    if getattr(task_obj, "filled_bands", None):
        notes.append(f"task source mean-filled bands {', '.join(task_obj.filled_bands)}")
    notes.extend(getattr(task_obj, "info", {}).get("notes", []))  # source facts (e.g. val used as test)
    if splits.val_source == "train":
        notes.append(f"no val split: {cfg.val_fraction:g} of train held out (seed {seed}) for model selection")
    return notes


def _head_records(head: Callable, region_plan: Any, task_obj: Any, proto: str, test_labels: np.ndarray,
                  n_classes: int | None, cfg: EvalConfig, seed: int, notes: list[str], ckpt_name: str,
                  checkpoint_id: str) -> list[dict]:
    """The records of one protocol: every head's metrics on every test region (a collapsed global head logged)."""
    records: list[dict] = []
    metrics, class_group = METRICS_BY_TYPE[task_obj.type], None
    if task_obj.type == "classification" and getattr(task_obj, "class_groups", None):
        metrics, class_group = metrics + GROUP_METRICS, class_group_ids(task_obj.classes, task_obj.class_groups)
    for spec in region_plan.heads:
        for params, pred in head(spec):
            for region, rows in region_plan.test_regions:
                share = max_class_share(task_obj.type, pred[rows], n_classes)
                if share is not None and share > COLLAPSE_SHARE and region == GLOBAL:
                    log(f"evaluate {task_obj.name} / {proto} (train region {spec.train_region}): one class is "
                        f"{share:.0%} of the test predictions (collapsed head; the report flags it)")
                results = compute_metrics(
                    task_obj.type, test_labels[rows], pred[rows], n_classes=n_classes,
                    metrics=metrics, n_boot=cfg.metrics.n_boot, level=cfg.metrics.level,
                    seed=seed, threshold=cfg.metrics.multilabel_threshold, class_group=class_group,
                )
                for metric, r in results.items():
                    records.append({
                        "task": task_obj.name, "protocol": proto, "metric": metric, "value": r.value,
                        "ci_low": r.ci_low, "ci_high": r.ci_high, "region": region,
                        "train_region": spec.train_region, "n": r.n, "checkpoint": ckpt_name,
                        "n_train": int(len(spec.train_idx) + (len(spec.val_idx) if proto != "finetune" else 0)),
                        "params": params, "notes": list(notes), "checkpoint_id": checkpoint_id,
                        "max_class_share": share,
                    })
    return records


def max_class_share(task_type: str, prediction: np.ndarray, n_classes: int | None) -> float | None:
    """Share of the most frequent predicted class (pixels for segmentation); None for other task types or no rows."""
    if task_type not in ("classification", "segmentation") or prediction.size == 0:
        return None
    counts = np.bincount(np.asarray(prediction, dtype=np.int64).ravel(), minlength=n_classes or 0)
    return float(counts.max() / counts.sum())


def write_results(records: list[dict], out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Records as a JSON list at ``out`` and a CSV beside it (params and notes JSON-encoded in their cells)."""
    out = Path(out)
    write_json(out, records)
    csv_path = out.with_suffix(".csv")
    with atomic_open(csv_path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(RECORD_FIELDS), extrasaction="ignore")
        writer.writeheader()
        for r in records:
            row = dict(r)
            for key in ("params", "notes"):
                row[key] = json.dumps(row.get(key), sort_keys=True)
            writer.writerow(row)
    return out, csv_path


def format_records(records: list[dict]) -> str:
    """One line per (protocol, metric, params) of the global head on the global test set, with its interval."""
    lines = []
    for r in records:
        if r["region"] != GLOBAL or r["train_region"] != GLOBAL:
            continue
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k in ("k", "C", "alpha", "best_epoch"))
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        ci = "" if r["ci_low"] is None else f" [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        lines.append(f"{r['task']} {r['protocol']}{' (' + params + ')' if params else ''} {r['metric']}: "
                     f"{value}{ci} n={r['n']}")
    return "\n".join(lines)
