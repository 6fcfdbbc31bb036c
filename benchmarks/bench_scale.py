"""Scale: parallel SimEarth builds (N processes vs one, measured in the same run), kNN and linear probes on segmentation.

- build: the same selected catalog written as shards by ``write_shards(..., workers=N)`` and by one process;
  wall-clock samples/s (the parallel part of a build; the catalog selection before it is serial). The shards are
  checked byte-identical. On a machine shared with other jobs the ratio is a lower bound.
- kNN segmentation: patch-token kNN of a fixed test set (tokens of 64 px patches at patch size 8 = 64 per image,
  tiny's 192-d features) against n training patches, with seven heads (global + six continents partitioning the
  training set), as ``geodiv evaluate --by continent`` runs it. geodiv: one similarity product per query block
  shared by all heads, top-k in torch (``knn_predict_many``). Baseline: the previous code, one search per head
  (the head's memory, a numpy product, a single-threaded ``argpartition``). The exponent of time in n is fitted
  over the sizes (1 = linear: at a fixed test set, exhaustive kNN is linear in the training patches).
- linear probe on segmentation: the global head of the per-token linear probe (``geodiv evaluate``'s code: C from
  the standard-cpu grid 0.01 ... 10 on validation tokens, refit on train + val) on n training patches of 64
  tokens, fitted on at most ``linear.max_tokens`` = 16,384 tokens per split (the standard-cpu profile's value)
  against every token (baseline). Token features are class centres mixed by each token's pixel class fractions plus
  noise. Such features converge far faster than encoder features (on the standard-cpu study's, the uncapped global
  head took 157 s at 61,440 tokens): the rows show how the time grows with the patches, capped and not, not its
  size. At 250 patches (16,000 tokens) the cap does not bind, so both fits do the same work. The accuracy row says
  what the cap costs on these features.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from geodiv.evaluate.knn import _MAX_BLOCK_ELEMENTS, knn_predict_many, l2_normalize, vote_weights

TOKENS, DIM, CLASSES, K = 64, 192, 6, 20


def _build_rows(quick: bool, n: int | None = None, workers: int | None = None) -> list[dict]:
    """``workers`` processes against one (default: 2, the development machine's cores)."""
    import os

    from geodiv.data.build import SimEarthSamples, _selected_catalog, load_dataset_configs
    from geodiv.data.shard_writer import write_shards

    n, size, workers = (96, 32, 2) if quick else (n or 1200, 64, workers or min(2, os.cpu_count() or 1))
    (cfg,) = load_dataset_configs({"name": "bench", "n": n, "size": size, "shard_size": n // 12, "seed": 0,
                                   "strategy": {"kind": "global", "mode": "balanced"}}).values()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        catalog = _selected_catalog(cfg, Path(tmp) / "cat")
        SimEarthSamples(catalog, cfg)[0]  # warm the world in this process (forked workers inherit it)
        kw = {"shard_size": cfg.shard_size, "bands": cfg.bands, "size": cfg.size}
        times, cpu, manifests = {}, {}, {}
        for w in (1, workers):
            c0, t = _cpu_seconds(), time.perf_counter()
            manifests[w] = write_shards(SimEarthSamples(catalog, cfg), Path(tmp) / f"w{w}", workers=w, **kw)
            times[w], cpu[w] = time.perf_counter() - t, _cpu_seconds() - c0
        same = manifests[1] == manifests[workers]
        one, many = n / times[1], n / times[workers]
        note = (f"{n} samples, 13 bands, shards {'byte-identical' if same else 'DIFFER'}; "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} during the run")
        rows.append({"benchmark": f"build SimEarth {size} px, {workers} processes vs 1 (wall clock)",
                     "value": round(many, 1), "unit": "samples/s", "baseline": round(one, 1),
                     "ratio": round(many / one, 2), "target": f">= {0.8 * workers:.1f} (0.8 x N)",
                     "note": note + "; the wall-clock ratio needs N idle cores"})
        rows.append({"benchmark": f"build SimEarth {size} px, {workers} processes vs 1 (CPU per sample)",
                     "value": round(1000 * cpu[workers] / n, 2), "unit": "CPU-ms/sample",
                     "baseline": round(1000 * cpu[1] / n, 2), "ratio": round(cpu[1] / cpu[workers], 2),
                     "target": ">= 0.8 (parallel efficiency)",
                     "note": "this process + its workers (getrusage); ratio = efficiency, so N idle cores give "
                             "ratio x N the one-process rate"})
    return rows


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished (waited-for) children."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _old_knn(memory: np.ndarray, targets: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The previous kNN search + vote (numpy product, single-threaded argpartition), for one head."""
    memory, queries = l2_normalize(memory), l2_normalize(queries)
    chunk = max(1, _MAX_BLOCK_ELEMENTS // memory.shape[0])
    out = np.empty((queries.shape[0], targets.shape[1]))
    for start in range(0, queries.shape[0], chunk):
        s = queries[start : start + chunk] @ memory.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        top_sim = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-top_sim, axis=1, kind="stable")
        idx, sim = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sim, order, axis=1)
        w = vote_weights(sim, 0.07)
        out[start : start + chunk] = np.einsum("qk,qkc->qc", w, targets[idx]) / w.sum(1, keepdims=True)
    return out


def _knn_rows(quick: bool) -> list[dict]:
    sizes = (25, 50, 100) if quick else (200, 500, 1000, 2000)
    n_test = 20 if quick else 100
    rng = np.random.default_rng(0)
    query = rng.standard_normal((n_test * TOKENS, DIM)).astype(np.float32)
    rows, new_t, old_t = [], [], []
    for n in sizes:
        memory = rng.standard_normal((n * TOKENS, DIM)).astype(np.float32)
        targets = rng.dirichlet(np.ones(CLASSES), n * TOKENS)
        region = np.repeat(np.arange(n) % 6, TOKENS)  # six continents, each patch's tokens together
        subsets = [np.arange(n * TOKENS)] + [np.nonzero(region == r)[0] for r in range(6)]
        t = time.perf_counter()
        knn_predict_many(memory, targets, query, subsets, ks=[K], task_type="distribution", n_classes=CLASSES)
        new_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        for rows_ in subsets:
            _old_knn(memory[rows_], targets[rows_], query, K)
        old_t.append(time.perf_counter() - t)
        rows.append({"benchmark": f"kNN segmentation, {n} training patches, 7 heads", "value": round(new_t[-1], 2),
                     "unit": "s (wall)", "baseline": round(old_t[-1], 2), "ratio": round(old_t[-1] / new_t[-1], 2),
                     "target": "-", "note": f"{n * TOKENS:,} memory x {n_test * TOKENS:,} query tokens, d={DIM}, k={K}"})
    import torch

    if torch.cuda.is_available():  # the same searches on the GPU (features.device: cuda, the default there)
        for n in sizes:
            memory = rng.standard_normal((n * TOKENS, DIM)).astype(np.float32)
            targets = rng.dirichlet(np.ones(CLASSES), n * TOKENS)
            region = np.repeat(np.arange(n) % 6, TOKENS)
            subsets = [np.arange(n * TOKENS)] + [np.nonzero(region == r)[0] for r in range(6)]
            t = time.perf_counter()
            knn_predict_many(memory, targets, query, subsets, ks=[K], task_type="distribution", n_classes=CLASSES,
                             device="cuda")
            rows.append({"benchmark": f"kNN segmentation on {torch.cuda.get_device_name()}, {n} training patches, "
                                      "7 heads", "value": round(time.perf_counter() - t, 3), "unit": "s (wall)",
                         "baseline": None, "ratio": None, "target": "-", "note": "includes host-device copies"})
    slope = float(np.polyfit(np.log(sizes), np.log(new_t), 1)[0])
    base_slope = float(np.polyfit(np.log(sizes), np.log(old_t), 1)[0])
    rows.append({"benchmark": "kNN segmentation: exponent of time in training patches", "value": round(slope, 2),
                 "unit": "(1 = linear)", "baseline": round(base_slope, 2), "ratio": None, "target": "<= 1.1",
                 "note": f"fitted over {', '.join(map(str, sizes))} patches at a fixed test set"})
    return rows


def _segmentation_split(n: int, rng: np.random.Generator, centres: np.ndarray):
    """n 32-px masks (classes on a 5 x 5 grid, so tokens straddle class borders) and their 8 x 8 token features."""
    import torch

    from geodiv.evaluate.segmentation import patch_fractions

    coarse = torch.from_numpy(rng.integers(0, CLASSES, (n, 1, 5, 5)).astype(np.float32))
    masks = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="nearest")[:, 0].numpy().astype(np.int64)
    frac = patch_fractions(masks, 8, CLASSES)  # (n, 64, K)
    feats = frac @ centres + rng.normal(0, 2.0, (n, TOKENS, DIM))
    return masks, feats.astype(np.float32)


def _split_table(masks: np.ndarray):
    """The evaluation's split table for unlocated samples with these masks."""
    from geodiv.evaluate.feature_cache import SplitTable

    n = len(masks)
    return SplitTable(np.arange(n).astype(str), masks, np.full(n, np.nan), np.full(n, np.nan), np.full(n, ""))


def _segmentation_linear_rows(quick: bool) -> list[dict]:
    from types import SimpleNamespace

    from geodiv.evaluate.config import EvalConfig
    from geodiv.evaluate.regions import GLOBAL, HeadSpec
    from geodiv.evaluate.runner import _FrozenFeatureHeads

    sizes, cap, n_test = ((20, 40), 640, 10) if quick else ((250, 500, 1000), 16_384, 100)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (CLASSES, DIM))
    test_masks, test_feats = _segmentation_split(n_test, rng, centres)
    rows, accuracy = [], {}
    for n in sizes:
        (tr_masks, tr_feats), (va_masks, va_feats) = (_segmentation_split(m, rng, centres) for m in (n, n // 4))
        tables = {s: _split_table(m) for s, m in (("train", tr_masks), ("val", va_masks), ("test", test_masks))}
        times = {}
        for limit in (cap, None):
            cfg = EvalConfig(linear={"c_grid": [0.01, 0.1, 1.0, 10.0], "max_tokens": limit})
            heads = _FrozenFeatureHeads(SimpleNamespace(type="segmentation"), tables,
                                        {"train": tr_feats, "val": va_feats, "test": test_feats}, cfg, CLASSES, 0,
                                        [])
            t = time.perf_counter()
            (_, pred), = heads.linear_head(HeadSpec(GLOBAL, np.arange(n), np.arange(n // 4)))
            times[limit] = time.perf_counter() - t
            accuracy[limit] = float((pred == test_masks).mean())
        rows.append({"benchmark": f"linear probe segmentation, {n} training patches, global head",
                     "value": round(times[cap], 2), "unit": "s (wall)", "baseline": round(times[None], 2),
                     "ratio": round(times[None] / times[cap], 2), "target": "-",
                     "note": f"{n * TOKENS:,} + {n // 4 * TOKENS:,} train + val tokens, at most {cap:,} each "
                             f"(baseline: all), d={DIM}, {CLASSES} classes, 4 C values + refit, 1 thread"})
    rows.append({"benchmark": f"linear probe segmentation, {sizes[-1]} training patches: pixel accuracy",
                 "value": round(accuracy[cap], 3), "unit": "accuracy", "baseline": round(accuracy[None], 3),
                 "ratio": round(accuracy[cap] / accuracy[None], 3), "target": "-",
                 "note": f"{n_test} test patches scored on every pixel; capped at {cap:,} tokens vs every token"})
    return rows


def run(quick: bool = False) -> list[dict]:
    return _build_rows(quick) + _knn_rows(quick) + _segmentation_linear_rows(quick)
