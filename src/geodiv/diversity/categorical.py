"""Categorical diversity: Shannon entropy of group proportions, its normalised form, and effective numbers.

The paper measures continent, biome and land-cover diversity of a pretraining dataset as the entropy of the
proportions of its samples per group. geodiv reports three views of the same distribution:

- ``entropy``: Shannon entropy in bits, ``H = -sum p_i log2 p_i`` (0 for a single group);
- ``normalized``: ``H / log2(K)`` with ``K`` the number of *possible* groups (the size of the vocabulary, e.g.
  7 continents, 17 IGBP classes), so 1 means "spread evenly over every group that exists" and values are
  comparable between datasets that happen to reach different numbers of groups;
- ``effective_number``: ``2**H`` (Hill number of order 1): the number of equally common groups that would give
  the same entropy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.special import entr

from geodiv.errors import InputError


def shannon_entropy(
    counts: np.ndarray | Sequence[float], axis: int = -1, base: float = 2.0
) -> np.ndarray | float:
    """Shannon entropy of (unnormalised) counts or probabilities along ``axis``, in units of ``log(base)``.

    Rows that sum to 0 get entropy 0 (no observations: no diversity). Works on any array shape, so a whole
    batch of histograms is one call.
    """
    arr = np.asarray(counts, dtype=np.float64)
    if np.any(arr < 0):
        raise InputError("shannon_entropy needs non-negative counts or probabilities; got a negative value")
    total = arr.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total > 0, arr / np.where(total > 0, total, 1.0), 0.0)
    # entr(p) = -p ln p with entr(0) = 0: the library's definition avoids 0 * log 0 by hand.
    h = entr(p).sum(axis=axis) / np.log(base)
    return float(h) if np.ndim(h) == 0 else h


def categorical_diversity(
    labels: Iterable[object] | Mapping[object, int], n_possible: int | None = None
) -> dict:
    """Entropy (bits), normalised entropy and effective number of groups of a sequence of labels.

    ``labels`` is a sequence of labels, or a mapping label -> count (e.g. a ``Counter`` built while streaming).

    ``None`` labels (e.g. a sample over the ocean has no continent) are left out of the distribution and
    counted in ``n_missing``. ``n_possible`` is the vocabulary size used for the normalised form; without it the
    number of groups observed is used (and ``normalized_by`` says which).
    """
    counter = Counter(dict(labels)) if isinstance(labels, Mapping) else Counter(labels)
    n_missing = counter.pop(None, 0)
    counter = +counter  # groups with a zero count are not observed
    groups = sorted(counter, key=str)
    counts = np.array([counter[g] for g in groups], dtype=np.float64)
    n_obs = len(groups)
    if n_possible is not None and n_possible < n_obs:
        raise InputError(
            f"categorical_diversity: {n_obs} distinct groups observed but n_possible={n_possible}; "
            "pass the size of the full vocabulary (or None to normalise by the groups observed)"
        )
    k = n_possible if n_possible is not None else n_obs
    h = float(shannon_entropy(counts)) if n_obs else 0.0
    normalized = h / np.log2(k) if k > 1 else 0.0
    return {
        "entropy": h,
        "normalized": float(normalized),
        "effective_number": float(2.0**h),
        "n_groups": n_obs,
        "n_possible": int(k),
        "normalized_by": "vocabulary" if n_possible is not None else "observed",
        "n_labelled": int(counts.sum()),
        "n_missing": int(n_missing),
        "counts": {str(g): int(counter[g]) for g in groups},
    }
