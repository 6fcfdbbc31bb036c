"""Weighted k-nearest-neighbour prediction on frozen features (the kNN protocol).

Cosine similarity between L2-normalised features; each of the k nearest training samples votes with weight
exp(similarity / temperature) (the InstDisc / DINO convention). Classification scores are the normalised vote
per class, multi-label scores the weighted mean of the neighbours' multi-hot labels, regression the weighted mean
of their values. Segmentation runs the same vote per patch token against the training set's patch tokens, each
carrying the class fractions of the pixels it covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geodiv.errors import InputError
from geodiv.progress import progress

# Similarity blocks are (query chunk x memory) float32; keep each under ~64 MB.
_MAX_BLOCK_ELEMENTS = 16_000_000


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def nearest_neighbours(
    memory: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities (n_queries, k) of the k most similar memory rows, most similar first."""
    memory = l2_normalize(memory)
    queries = l2_normalize(queries)
    k = min(k, memory.shape[0])
    chunk = max(1, _MAX_BLOCK_ELEMENTS // max(1, memory.shape[0]))
    idx = np.empty((queries.shape[0], k), dtype=np.int64)
    sim = np.empty((queries.shape[0], k), dtype=np.float32)
    with progress(total=queries.shape[0], desc="kNN search", unit="query") as bar:
        for start in range(0, queries.shape[0], chunk):
            s = queries[start : start + chunk] @ memory.T
            top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.tile(np.arange(k), (len(s), 1))
            top_sim = np.take_along_axis(s, top, axis=1)
            order = np.argsort(-top_sim, axis=1, kind="stable")
            idx[start : start + chunk] = np.take_along_axis(top, order, axis=1)
            sim[start : start + chunk] = np.take_along_axis(top_sim, order, axis=1)
            bar.update(len(s))
    return idx, sim


def vote_weights(sim: np.ndarray, temperature: float) -> np.ndarray:
    """exp(sim / T), shifted by the row maximum (the shift cancels when votes are normalised)."""
    z = (sim - sim[:, :1]) / temperature
    return np.exp(z.astype(np.float64))


def knn_predict(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    query_features: np.ndarray,
    *,
    ks: Sequence[int] = (20,),
    temperature: float = 0.07,
    task_type: str = "classification",
    n_classes: int | None = None,
) -> dict[int, np.ndarray]:
    """Predictions for every k in ``ks`` from one neighbour search.

    ``train_targets``: class indices (n,) for classification, multi-hot (n, K) for multilabel, values (n,) for
    regression, or per-row class distributions (n, K) (used for segmentation patch tokens). Returns, per k:
    class scores (n_q, K) for classification / distributions, label scores (n_q, K) for multilabel, values (n_q,)
    for regression.
    """
    train_features = np.asarray(train_features)
    train_targets = np.asarray(train_targets)
    if train_features.shape[0] != train_targets.shape[0]:
        raise InputError(
            f"kNN: {train_features.shape[0]} training feature rows but {train_targets.shape[0]} labels; "
            "features and labels must come from the same samples"
        )
    if train_features.shape[0] == 0:
        raise InputError("kNN: the training set is empty")
    if query_features.shape[1] != train_features.shape[1]:
        raise InputError(
            f"kNN: query features have {query_features.shape[1]} dimensions, training features "
            f"{train_features.shape[1]}; both must come from the same encoder"
        )
    if not ks or min(ks) < 1:
        raise InputError(f"kNN: k must be a list of positive integers, got {list(ks)}")
    idx, sim = nearest_neighbours(train_features, query_features, max(ks))
    weights = vote_weights(sim, temperature)
    if task_type == "classification" and train_targets.ndim == 1:
        if n_classes is None:
            n_classes = int(train_targets.max()) + 1
        values = np.eye(n_classes, dtype=np.float64)[train_targets.astype(np.int64)]
    else:
        values = train_targets.astype(np.float64)
    neighbour_values = values[idx]  # (n_q, kmax) or (n_q, kmax, K)
    out = {}
    for k in ks:
        w = weights[:, :k]
        vals = neighbour_values[:, :k]
        if vals.ndim == 2:
            out[int(k)] = (w * vals).sum(1) / w.sum(1)
        else:
            out[int(k)] = np.einsum("qk,qkc->qc", w, vals) / w.sum(1, keepdims=True)
    return out
