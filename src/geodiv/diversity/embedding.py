"""Embedding diversity: the Vendi score of a set of feature vectors (Friedman & Dieng, 2023).

With the cosine-similarity kernel ``K = Z Z^T`` (``Z`` the L2-normalised features, so ``K_ii = 1``), the Vendi
score is ``exp(H)`` where ``H`` is the Shannon entropy (natural log) of the eigenvalues of ``K / n``: the effective
number of distinct samples, between 1 (all identical) and ``min(n, d)``. This is a pure function of the
feature matrix: this stage runs before the models, so the caller extracts features (e.g.
``geodiv.models.extract_features``) and passes them in.
"""

from __future__ import annotations

import numpy as np

from geodiv.errors import InputError


def vendi_score(features: np.ndarray) -> float:
    """Vendi score (order 1, cosine kernel) of features (n, d); uses the d x d Gram matrix when n > d."""
    z = np.asarray(features, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 1:
        raise InputError(f"features must be a non-empty (n, d) matrix; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise InputError("features contain NaN or infinite values")
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InputError("a feature vector is all zeros; its cosine similarity is undefined")
    z = z / norms
    n, d = z.shape
    # Z Z^T / n and Z^T Z / n share their non-zero eigenvalues; the smaller one is cheaper.
    gram = (z @ z.T if n <= d else z.T @ z) / n
    eig = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    eig = eig[eig > 0]
    eig = eig / eig.sum()
    return float(np.exp(-(eig * np.log(eig)).sum()))
