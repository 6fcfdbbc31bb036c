"""Sampling strategies: which candidates of a catalog make a dataset of exactly ``n`` samples.

Typed configs, told apart by ``kind``:

- ``global``: ``mode: area`` draws uniformly over the candidates of the listed continents (SimEarth candidates are
  uniform by land area, so the dataset is too); ``mode: balanced`` gives every continent the same share.
- ``one_hot``: every sample from one continent (the paper's six one-hot datasets).
- ``mixture``: explicit continent ratios, e.g. ``{Europe: 0.5, Africa: 0.5}``.
- ``stratified``: balanced over ``biome``, ``landcover`` or ``climate`` classes within a region; classes with
  too few candidates give all they have and the rest is shared among the others (water-filling).
- ``diversity``: rank candidates by a registered scorer (``register_scorer``; the caller registers them: the
  CLI and the study call ``geodiv.diversity.register_scorers()`` for ``spectral_entropy`` and
  ``landscape_entropy``, so this stage never imports a later one) and keep the ``top``, a ``quantile`` band, or a selection
  ``balanced`` over equal-width score bins.

Quotas use largest-remainder rounding, so every dataset of a study has exactly ``n`` samples; a catalog that
cannot supply a quota is an error, never a smaller dataset. Every choice is a function of the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import Field, field_validator, model_validator

from geodiv.config import StrictModel
from geodiv.errors import ConfigError, DataError

#: The six continents of the paper's datasets (Antarctica excluded).
STUDY_CONTINENTS: tuple[str, ...] = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")


def _check_continent(name: str) -> str:
    from geodiv.geo import CONTINENTS

    for c in CONTINENTS:
        if c.lower().replace("_", " ") == str(name).strip().lower().replace("_", " "):
            return c
    raise ValueError(f"unknown continent {name!r}; choose from {', '.join(CONTINENTS)}")


class GlobalStrategy(StrictModel):
    kind: Literal["global"] = "global"
    mode: Literal["area", "balanced"] = "area"
    continents: list[str] = Field(default_factory=lambda: list(STUDY_CONTINENTS))

    @field_validator("continents")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one continent")
        return [_check_continent(c) for c in v]


class OneHotStrategy(StrictModel):
    kind: Literal["one_hot"] = "one_hot"
    continent: str

    @field_validator("continent")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_continent(v)


class MixtureStrategy(StrictModel):
    kind: Literal["mixture"] = "mixture"
    ratios: dict[str, float]

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("give at least one continent ratio")
        out = {_check_continent(k): float(r) for k, r in v.items()}
        if any(r < 0 for r in out.values()) or sum(out.values()) <= 0:
            raise ValueError("ratios must be non-negative with a positive sum")
        total = sum(out.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ratios sum to {total:g}; they must sum to 1 (e.g. Europe: 0.5, Africa: 0.5)")
        return out


class StratifiedStrategy(StrictModel):
    kind: Literal["stratified"] = "stratified"
    by: Literal["biome", "landcover", "climate"] = "biome"
    #: region of the candidate pool (geodiv.geo.resolve_region spec)
    region: str | list[str] = Field(default_factory=lambda: list(STUDY_CONTINENTS))
    #: candidates drawn per requested sample (SimEarth), so rare classes can be filled
    pool_factor: float = Field(8.0, ge=1.0)


class DiversityStrategy(StrictModel):
    kind: Literal["diversity"] = "diversity"
    scorer: str = "spectral_entropy"
    mode: Literal["top", "quantile", "balanced"] = "top"
    #: score quantile band kept by mode=quantile, e.g. [0.0, 0.25] = the least diverse quarter
    quantile: tuple[float, float] = (0.75, 1.0)
    #: equal-width score bins for mode=balanced
    bins: int = Field(10, ge=2)
    region: str | list[str] = Field(default_factory=lambda: list(STUDY_CONTINENTS))
    pool_factor: float = Field(4.0, ge=1.0)

    @model_validator(mode="after")
    def _band(self) -> DiversityStrategy:
        lo, hi = self.quantile
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"quantile band must satisfy 0 <= low < high <= 1, got {self.quantile}")
        return self


Strategy = Annotated[
    Union[GlobalStrategy, OneHotStrategy, MixtureStrategy, StratifiedStrategy, DiversityStrategy],
    Field(discriminator="kind"),
]


# ------------------------------------------------------------------------------------------------ scorers
Scorer = Callable[[Any], np.ndarray]
#: Scorers by name, filled by the caller (``register_scorer``): the data stage imports no later stage.
_SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str, fn: Scorer) -> None:
    """Register ``fn(catalog) -> scores (n_rows,)`` under ``name`` for the ``diversity`` strategy."""
    if not callable(fn):
        raise ConfigError(f"scorer {name!r} must be callable")
    _SCORERS[name] = fn


def get_scorer(name: str) -> Scorer:
    if name not in _SCORERS:
        raise ConfigError(
            f"no diversity scorer named {name!r}; registered: {', '.join(sorted(_SCORERS)) or 'none'} "
            "(register one with geodiv.data.register_scorer(name, fn); geodiv.diversity.register_scorers() "
            "registers landscape_entropy and spectral_entropy)"
        )
    return _SCORERS[name]


# ---------------------------------------------------------------------------------------------- allocation
def largest_remainder(weights: dict[str, float], n: int) -> dict[str, int]:
    """Integer quotas summing to ``n`` proportional to ``weights`` (ties broken by name, deterministic)."""
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    out = {k: int(np.floor(v)) for k, v in exact.items()}
    rest = n - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:rest]:
        out[k] += 1
    return out


def water_fill(available: dict[Any, int], n: int) -> dict[Any, int]:
    """As equal as possible a split of ``n`` over groups, none above what it has; raises if ``n`` > total."""
    if sum(available.values()) < n:
        raise DataError(f"only {sum(available.values())} candidates for {n} samples; enlarge the pool")
    alloc = dict.fromkeys(available, 0)
    left = n
    open_groups = sorted(available, key=lambda k: (available[k], str(k)))
    while left > 0:
        share = left // len(open_groups)
        if share == 0:  # hand out the last few one each, in a fixed order
            for k in sorted(open_groups, key=str)[:left]:
                alloc[k] += 1
            break
        nxt = []
        for k in open_groups:
            take = min(share, available[k] - alloc[k])
            alloc[k] += take
            left -= take
            if alloc[k] < available[k]:
                nxt.append(k)
        open_groups = nxt
    return alloc


def continent_quotas(strategy: Any, n: int) -> dict[str, int] | None:
    """Per-continent sample counts of continent-based strategies (None for the others / area mode)."""
    if isinstance(strategy, OneHotStrategy):
        return {strategy.continent: n}
    if isinstance(strategy, MixtureStrategy):
        return largest_remainder({k: v for k, v in strategy.ratios.items() if v > 0}, n)
    if isinstance(strategy, GlobalStrategy) and strategy.mode == "balanced":
        return largest_remainder(dict.fromkeys(strategy.continents, 1.0), n)
    return None


def pool_regions(strategy: Any, n: int) -> dict[str | tuple[str, ...], int]:
    """Where to draw SimEarth candidates and how many (exact quotas; the builder adds a margin for exclusions)."""
    quotas = continent_quotas(strategy, n)
    if quotas is not None:
        return {k: v for k, v in quotas.items() if v > 0}
    if isinstance(strategy, GlobalStrategy):
        return {tuple(strategy.continents): n}
    region = strategy.region if isinstance(strategy.region, str) else tuple(strategy.region)
    return {region: int(np.ceil(n * strategy.pool_factor))}


# ------------------------------------------------------------------------------------------------ select
def _pick(rng: np.random.Generator, rows: np.ndarray, k: int, what: str) -> np.ndarray:
    if k > rows.size:
        raise DataError(f"the catalog has {rows.size} candidates for {what}, the dataset needs {k}")
    return rng.choice(rows, size=k, replace=False) if k else rows[:0]


def _column(catalog: Any, name: str) -> np.ndarray:
    if name not in catalog.columns:
        raise DataError(f"the catalog has no {name!r} column; annotate it (geodiv.data.make_catalog(annotate=True))")
    return np.array([None if v is None or v != v else str(v) for v in catalog[name].to_numpy()], dtype=object)


def select(strategy: Any, catalog: Any, n: int, seed: int) -> np.ndarray:
    """Row positions of ``catalog`` forming the dataset, in a seeded random order (shards mix regions)."""
    if n < 1:
        raise ConfigError(f"a dataset needs n >= 1 samples, got {n}")
    rng = np.random.default_rng([int(seed), 7919])
    rows = np.arange(len(catalog))
    quotas = continent_quotas(strategy, n)
    if quotas is not None:
        continent = _column(catalog, "continent")
        chosen = [_pick(rng, rows[continent == c], q, c) for c, q in sorted(quotas.items())]
        picked = np.concatenate(chosen)
    elif isinstance(strategy, GlobalStrategy):
        continent = _column(catalog, "continent")
        ok = np.isin(continent, np.array(strategy.continents, dtype=object))
        picked = _pick(rng, rows[ok], n, "the listed continents")
    elif isinstance(strategy, StratifiedStrategy):
        picked = _stratified(rng, _column(catalog, strategy.by), n, strategy.by)
    elif isinstance(strategy, DiversityStrategy):
        picked = _diversity(strategy, catalog, n, rng)
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise ConfigError(f"unknown strategy {strategy!r}")
    return rng.permutation(picked)


def _stratified(rng: np.random.Generator, labels: np.ndarray, n: int, by: str) -> np.ndarray:
    known = np.array([v is not None for v in labels])
    classes = sorted({v for v in labels[known]})
    if not classes:
        raise DataError(f"no candidate has a {by} class; cannot stratify")
    rows = np.arange(labels.size)
    available = {c: int((labels == c).sum()) for c in classes}
    try:
        alloc = water_fill(available, n)
    except DataError as err:
        raise DataError(f"stratified by {by}: {err}") from None
    return np.concatenate([_pick(rng, rows[labels == c], alloc[c], f"{by} {c}") for c in classes])


def _diversity(strategy: DiversityStrategy, catalog: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    scores = np.asarray(get_scorer(strategy.scorer)(catalog), dtype=np.float64)
    if scores.shape != (len(catalog),):
        raise DataError(f"scorer {strategy.scorer!r} returned {scores.shape} scores for {len(catalog)} rows")
    valid = np.flatnonzero(np.isfinite(scores))
    if valid.size < n:
        raise DataError(f"scorer {strategy.scorer!r} scored {valid.size} candidates finitely; the dataset needs {n}")
    # Rank by score; ties broken by a seeded random key, so equal scores are not chosen by catalog order.
    order = valid[np.lexsort((rng.random(valid.size), -scores[valid]))]
    if strategy.mode == "top":
        return order[:n]
    if strategy.mode == "quantile":
        lo, hi = strategy.quantile
        m = order.size
        band = order[int(np.floor((1 - hi) * m)) : int(np.ceil((1 - lo) * m))]
        return _pick(rng, band, n, f"score quantiles {lo}..{hi}")
    s = scores[valid]
    edges = np.linspace(s.min(), s.max(), strategy.bins + 1)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, strategy.bins - 1)
    alloc = water_fill({b: int((which == b).sum()) for b in range(strategy.bins)}, n)
    return np.concatenate([_pick(rng, valid[which == b], alloc[b], f"score bin {b}") for b in range(strategy.bins)])
