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
    memory: np.ndarray, queries: np.ndarray, k: int, *, subsets: Sequence[np.ndarray] | None = None,
    device: str | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per subset of memory rows (default: all rows), indices into ``memory`` and cosine similarities
    (n_queries, k) of the k most similar rows of that subset, most similar first.

    One similarity block (query chunk x all memory) serves every subset, so the heads of many regions cost one
    matrix product; top-k runs in torch (multithreaded, on ``device`` when given, e.g. ``cuda``). Time is
    O(n_queries x n_memory x dim) for the products plus O(n_queries x n_memory) per subset for the selection.
    """
    import torch

    dev = torch.device(device or "cpu")
    mem = torch.from_numpy(l2_normalize(memory)).to(dev)
    qs = torch.from_numpy(l2_normalize(queries))
    sets = [None] if subsets is None else [torch.from_numpy(np.asarray(c, dtype=np.int64)).to(dev) for c in subsets]
    sizes = [mem.shape[0] if c is None else int(c.numel()) for c in sets]
    if min(sizes) == 0:
        raise InputError("kNN: a training set (region) is empty")
    ks = [min(k, n) for n in sizes]
    idx = [np.empty((qs.shape[0], kk), dtype=np.int64) for kk in ks]
    sim = [np.empty((qs.shape[0], kk), dtype=np.float32) for kk in ks]
    chunk = max(1, _MAX_BLOCK_ELEMENTS // max(1, mem.shape[0]))
    with torch.inference_mode(), progress(total=qs.shape[0], desc="kNN search", unit="query") as bar:
        for start in range(0, qs.shape[0], chunk):
            block = qs[start : start + chunk].to(dev) @ mem.T
            for j, cols in enumerate(sets):
                part = block if cols is None else block.index_select(1, cols)
                top_sim, top = part.topk(ks[j], dim=1, largest=True, sorted=True)
                if cols is not None:
                    top = cols[top]
                idx[j][start : start + chunk] = top.cpu().numpy()
                sim[j][start : start + chunk] = top_sim.cpu().numpy()
            bar.update(min(chunk, qs.shape[0] - start))
    return list(zip(idx, sim))


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
    device: str | None = None,
) -> dict[int, np.ndarray]:
    """Predictions for every k in ``ks`` from one neighbour search.

    ``train_targets``: class indices (n,) for classification, multi-hot (n, K) for multilabel, values (n,) for
    regression, or per-row class distributions (n, K) (used for segmentation patch tokens). Returns, per k:
    class scores (n_q, K) for classification / distributions, label scores (n_q, K) for multilabel, values (n_q,)
    for regression.
    """
    return knn_predict_many(train_features, train_targets, query_features, None, ks=ks, temperature=temperature,
                            task_type=task_type, n_classes=n_classes, device=device)[0]


def knn_predict_many(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    query_features: np.ndarray,
    subsets: Sequence[np.ndarray] | None,
    *,
    ks: Sequence[int] = (20,),
    temperature: float = 0.07,
    task_type: str = "classification",
    n_classes: int | None = None,
    device: str | None = None,
) -> list[dict[int, np.ndarray]]:
    """:func:`knn_predict` for several training sets at once, each a subset of the rows of ``train_features``
    (e.g. one per training region): one neighbour search, one result per subset (``None``: all rows)."""
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
    if task_type == "classification" and train_targets.ndim == 1:
        if n_classes is None:
            n_classes = int(train_targets.max()) + 1
        values = np.eye(n_classes, dtype=np.float64)[train_targets.astype(np.int64)]
    else:
        values = train_targets.astype(np.float64)
    results = []
    for idx, sim in nearest_neighbours(train_features, query_features, max(ks), subsets=subsets, device=device):
        weights = vote_weights(sim, temperature)
        neighbour_values = values[idx]  # (n_q, kmax) or (n_q, kmax, K)
        out = {}
        for k in ks:
            w = weights[:, :k]
            vals = neighbour_values[:, :k]
            if vals.ndim == 2:
                out[int(k)] = (w * vals).sum(1) / w.sum(1)
            else:
                out[int(k)] = np.einsum("qk,qkc->qc", w, vals) / w.sum(1, keepdims=True)
        results.append(out)
    return results
